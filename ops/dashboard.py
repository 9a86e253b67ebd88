"""The admin home's overview panels (see registry.py)."""

from . import overview


def panels(request):
    if not request.user.is_staff:
        return []
    return [
        {
            "title": "Currencies",
            "template": "ops/panel_currencies.html",
            "context": {"rows": overview.currency_rows()},
        },
        {
            "title": "Wallets and nodes",
            "template": "ops/panel_wallets.html",
            "context": {"rows": overview.wallet_rows()},
        },
        {
            "title": "Deposits per hour, last 24 hours",
            "template": "ops/panel_chart.html",
            "context": {"svg": overview.bar_chart_svg(overview.deposits_per_hour())},
        },
        {
            "title": "Scheduler",
            "template": "ops/panel_scheduler.html",
            "context": {"rows": overview.schedule_rows()},
        },
    ]
