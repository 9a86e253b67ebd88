"""django-q2 schedules, registered idempotently after every migrate (never in ready()).

Schedules run the project's registered jobs only: the `SCHEDULES` of each app, which are
code, not data. The cluster imports and calls a schedule's `func` (and its `hook`) with its
`args` and `kwargs` (whose `q_options` reach the queue), so a row naming anything else would
let whoever can save a schedule run any code as the service's user. Every save is checked
here (pre_save: the admin, a shell, django_q.tasks.schedule(), superusers alike), and migrate
removes rows that fail the check (written before it existed, or by a bulk write that skips
save). The database refuses them too: migrate installs a trigger on django_q's schedule
table built from the registry, so `QuerySet.update()`, `bulk_create` and raw SQL cannot
write one either."""

import logging

from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models.signals import post_migrate, pre_save
from django.dispatch import receiver

from cryptoadmin.registry import collect, project_app_names

logger = logging.getLogger(__name__)

# What the registry decides for a schedule; a role may change only the interval (minutes),
# the next run and repeats (-1 forever, 0 off).
LOCKED_FIELDS = ("func", "hook", "args", "kwargs", "cluster", "intended_date_kwarg")


def all_schedules() -> list[dict]:
    return collect("schedules", "SCHEDULES")


def registered_jobs() -> dict[str, dict]:
    """func -> its registered spec (the first one naming it)."""
    jobs = {}
    for spec in all_schedules():
        jobs.setdefault(spec["func"], spec)
    return jobs


def _locked(values) -> dict:
    # A form saves an empty field as '' and code leaves it None: both mean "not set".
    return {name: (values.get(name) or None) for name in LOCKED_FIELDS}


def is_registered(schedule) -> bool:
    mine = _locked({name: getattr(schedule, name, None) for name in LOCKED_FIELDS})
    return any(_locked(spec) == mine for spec in all_schedules())


def check_schedule(schedule) -> None:
    """ValidationError unless the schedule runs a registered job exactly as registered."""
    if is_registered(schedule):
        return
    if schedule.func not in registered_jobs():
        raise ValidationError(
            f"{schedule.func!r} is not a registered job; schedules run only the "
            f"project's jobs: {', '.join(sorted(registered_jobs()))}.",
            code="unregistered",
        )
    raise ValidationError(
        f"{schedule.func!r} is registered without a hook, arguments, keyword arguments, "
        "cluster or intended-date argument other than its registry's.",
        code="unregistered",
    )


@receiver(pre_save, sender="django_q.Schedule")
def refuse_unregistered_schedule(sender, instance, raw=False, **kwargs):
    check_schedule(instance)  # fixtures (raw) too: a fixture is data, the registry is code


def is_project_task(func) -> bool:
    """A function this project ships as a task: a registered job, or `<app>.tasks.<name>`
    of one of the project's apps, defined in that app. Re-running anything else is refused."""
    if not isinstance(func, str) or not func:
        return False
    if func in registered_jobs():
        return True
    module_name, _, name = func.rpartition(".")
    app = module_name.split(".")[0]
    if (
        app not in project_app_names()
        or module_name != f"{app}.tasks"
        or not name.isidentifier()
        or name.startswith("_")
    ):
        return False
    from importlib import import_module

    target = getattr(import_module(module_name), name, None)
    return callable(target) and getattr(target, "__module__", "").startswith(f"{app}.")


TRIGGER = "cryptoadmin_schedule_registered"


def _literal(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _registered_condition(columns: dict[str, str]) -> str:
    """SQL true when NEW's locked columns equal one registry entry's (NULL and '' both "not
    set")."""
    clauses = [
        "("
        + " AND ".join(
            f"COALESCE(NEW.{columns[f]}, '') = {_literal(spec.get(f) or '')}" for f in LOCKED_FIELDS
        )
        + ")"
        for spec in all_schedules()
    ]
    return " OR ".join(clauses) or "1 = 0"


def install_schedule_check(using="default") -> None:
    """(Re)create the trigger refusing unregistered schedule rows, from the registry as it is
    now."""
    from django_q.models import Schedule

    connection = connections[using]
    table = connection.ops.quote_name(Schedule._meta.db_table)
    condition = _registered_condition(
        {f: connection.ops.quote_name(Schedule._meta.get_field(f).column) for f in LOCKED_FIELDS}
    )
    message = "schedules run registered jobs only (ops/scheduler.py)"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"""
                CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger AS $guard$
                BEGIN
                  IF NOT ({condition}) THEN
                    RAISE EXCEPTION '{message}: %', NEW.func USING ERRCODE = '23514';
                  END IF;
                  RETURN NEW;
                END $guard$ LANGUAGE plpgsql""")
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")
            cursor.execute(
                f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
            )
        elif connection.vendor == "sqlite":
            for event in ("INSERT", "UPDATE"):
                name = f"{TRIGGER}_{event.lower()}"
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                cursor.execute(
                    f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN NOT ({condition}) "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                )
        else:  # the save-time check still applies
            logger.warning("No database check for schedules on %s", connection.vendor)


@receiver(post_migrate)
def register_schedules(sender, using="default", **kwargs):
    if sender.name != "ops":  # once per migrate, after our app's migrations
        return
    from django_q.models import Schedule

    for schedule in Schedule.objects.using(using).all():
        if not is_registered(schedule):
            logger.warning(
                "Removing schedule %r (func %r): not a registered job", schedule.name, schedule.func
            )
            Schedule.objects.using(using).filter(pk=schedule.pk).delete()
    install_schedule_check(using)
    for spec in all_schedules():
        spec = {**{name: None for name in LOCKED_FIELDS}, **spec}
        name = spec.pop("name")
        # The registry decides what runs; the interval, next run and repeats a role chose
        # survive a deploy.
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={field: spec[field] for field in LOCKED_FIELDS},
            create_defaults=spec,
        )


def rerun_route(func):
    """The function re-running a task queued for a person (an app's `tasks.RERUNS`), or None."""
    from django.utils.module_loading import import_string

    from cryptoadmin.registry import app_modules

    for module in app_modules("tasks"):
        route = getattr(module, "RERUNS", {}).get(func)
        if route:
            return import_string(route)
    return None
