from .registry import collect


def admin_alerts(request):
    """Banners on every admin page (e.g. interrupted broadcasts), for staff only."""
    if (
        not request.path.startswith("/admin/")
        or not getattr(request, "user", None)
        or not request.user.is_staff
    ):
        return {}
    return {"admin_alerts": collect("dashboard", "alerts", request)}
