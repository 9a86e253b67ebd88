"""The balance cache's figures on the admin index."""

from django.urls import reverse


def panels(request):
    if not request.user.is_staff:
        return []
    from .cache import existing_cache, get_listener

    cache = existing_cache()
    stats = cache.stats() if cache is not None else None
    listener = get_listener() if cache is not None else None
    context = {
        "stats": stats,
        "mode": getattr(cache, "mode", None),
        "listener": listener,
        "lookup_url": reverse("admin:balances_user_balances")
        if request.user.has_perm("balances.view_user_balances")
        else None,
    }
    return [
        dict(title="Balance cache (this process)", template="balances/panel.html", context=context)
    ]
