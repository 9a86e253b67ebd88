from django import template

from ..registry import collect

register = template.Library()


@register.inclusion_tag("cryptoadmin/panels.html", takes_context=True)
def dashboard_panels(context):
    request = context["request"]
    return {"panels": collect("dashboard", "panels", request), "request": request}
