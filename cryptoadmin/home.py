"""The admin home's "needs a person" strip: what each app counts as waiting for a person, each
count linking to the list filtered to exactly those rows. The home page shows it first and
refreshes it by fetching `fragment` (no reload, no framework).

Sources: `<app>/dashboard.py` `needs_person(request) -> [dict(key=, title=, count=, url=,
level="error"|"warning")]`, in the apps' `hooks_order` (see registry.py). An app that adds a
kind of work for people (failing webhooks...) adds a source there; nothing here changes."""

from django.contrib.admin.views.decorators import staff_member_required
from django.template.response import TemplateResponse

from .registry import collect

# How often the home page fetches the strip again, in seconds.
REFRESH_SECONDS = 15


def items(request) -> list[dict]:
    """Every source's items, those with a count first (in source order), then the quiet ones."""
    found = collect("dashboard", "needs_person", request)
    return [i for i in found if i["count"]] + [i for i in found if not i["count"]]


def context(request) -> dict:
    return {"needs_items": items(request), "refresh_seconds": REFRESH_SECONDS}


@staff_member_required
def fragment(request):
    """The strip alone, for the home page's script: a GET that reads counts and writes nothing."""
    return TemplateResponse(request, "cryptoadmin/needs_person.html", context(request))
