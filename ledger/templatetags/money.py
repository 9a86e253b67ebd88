"""`{% load money %}` then `{{ units|amount:currency }}`: money.format_amount in templates."""

from django import template

from ..money import format_amount

register = template.Library()


@register.filter
def amount(units, currency):
    return format_amount(units, currency)
