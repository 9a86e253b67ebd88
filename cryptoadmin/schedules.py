"""django-q2 schedules, registered idempotently after every migrate (never in ready())."""
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from .registry import collect


def all_schedules() -> list[dict]:
    return collect("schedules", "SCHEDULES")


@receiver(post_migrate)
def register_schedules(sender, using="default", **kwargs):
    if sender.name != "cryptoadmin":  # once per migrate, after our app's migrations
        return
    from django_q.models import Schedule

    for spec in all_schedules():
        spec = dict(spec)
        name = spec.pop("name")
        Schedule.objects.using(using).update_or_create(name=name, defaults=spec)
