from django import template

from .. import home
from ..registry import collect

register = template.Library()


@register.inclusion_tag("cryptoadmin/panels.html", takes_context=True)
def dashboard_panels(context):
    request = context["request"]
    return {"panels": collect("dashboard", "panels", request), "request": request}


@register.inclusion_tag("cryptoadmin/needs_person.html", takes_context=True)
def needs_person_strip(context):
    return home.context(context["request"])


@register.simple_tag
def needs_refresh_ms():
    return home.REFRESH_SECONDS * 1000


@register.inclusion_tag("cryptoadmin/lists.html", takes_context=True)
def project_lists(context):
    """Every list the person may open, one line per app (instead of Django's app tables)."""
    return {"apps": context.get("app_list", []), "perms": context.get("perms")}
