"""django-q2's admin pages, re-registered so that no role can do more than its name says.

- Scheduled tasks: a new schedule is one of the registered jobs (a choice, never a dotted
  path); an existing one shows what it runs read-only, and only its interval, next run and
  repeats can be changed (`django_q.change_schedule`: Admin). The save-time check in
  ops/scheduler.py refuses anything else from anywhere, superusers included.
- Successful / Failed tasks: read-only records. "Re-run" queues a project task again and
  declares `django_q.add_ormq` (Admin); the record stays. Nobody deletes them here.
- Queued tasks: read-only; deleting one is left to superusers (`django_q.delete_ormq`).
"""

import django_q.admin as q_admin  # registers django-q2's own admins first, so they can be replaced
from django import forms
from django.contrib import admin, messages
from django.core.validators import MinValueValidator
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timezone import localtime
from django_q.models import Failure, OrmQ, Schedule, Success

from cryptoadmin.words import count
from ledger.admin import ReadOnly

from . import scheduler_display as shown
from .scheduler import (
    LOCKED_FIELDS,
    check_schedule,
    is_project_task,
    registered_jobs,
    rerun_route,
)

RERUN_PERM = "django_q.add_ormq"


class ScheduleTimingForm(forms.ModelForm):
    """What a role may change on a schedule: the interval, the next run and repeats."""

    class Meta:
        model = Schedule
        fields = ["minutes", "next_run", "repeats"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "minutes" in self.fields and self.instance.schedule_type in (None, "", Schedule.MINUTES):
            self.fields["minutes"].required = True
            self.fields["minutes"].validators.append(MinValueValidator(1))

    def clean_repeats(self):
        repeats = self.cleaned_data["repeats"]
        if repeats < -1:
            raise forms.ValidationError(
                "-1 repeats forever, 0 turns the schedule off, n runs n more times."
            )
        return repeats

    def clean(self):
        data = super().clean()
        try:
            check_schedule(self.instance)
        except forms.ValidationError as exc:
            self.add_error(None, exc)
        return data


class ScheduleAddForm(ScheduleTimingForm):
    func = forms.ChoiceField(
        label="Job", help_text="Schedules run the project's registered jobs only."
    )

    class Meta:
        model = Schedule
        fields = ["func", "name", "minutes", "next_run", "repeats"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        jobs = registered_jobs()
        self.fields["func"].choices = [("", "---------")] + [
            (f, f"{s['name']} ({f})") for f, s in sorted(jobs.items())
        ]

    def clean(self):
        spec = registered_jobs().get(self.cleaned_data.get("func"))
        if spec is None:
            return forms.ModelForm.clean(self)  # the choice field already said why
        # What runs comes from the registry, never from the form.
        self.instance.func = spec["func"]
        self.instance.schedule_type = spec.get("schedule_type", Schedule.MINUTES)
        for field in LOCKED_FIELDS:
            setattr(self.instance, field, spec.get(field) or None)
        return super().clean()


class ScheduleAdmin(q_admin.ScheduleAdmin):
    list_display = ("name", "job", "interval", "repeats", "next_run", "last_run")
    list_display_links = ("name",)
    list_filter = ("schedule_type",)
    readonly_fields = ()

    def get_queryset(self, request):
        from django.db.models import OuterRef, Subquery
        from django_q.models import Task

        last = Task.objects.filter(id=OuterRef("task"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                task_started=Subquery(last.values("started")),
                task_stopped=Subquery(last.values("stopped")),
            )
        )

    @admin.display(description="job", ordering="func")
    def job(self, obj):
        return format_html('<span title="{}">{}</span>', obj.func, shown.job_name(obj.func))

    @admin.display(description="interval", ordering="minutes")
    def interval(self, obj):
        return shown.every(obj)

    @admin.display(description="last run")
    def last_run(self, obj):
        if obj.task_name is None:
            return "not yet"
        page = "django_q_success_change" if obj.task_success else "django_q_failure_change"
        return format_html(
            '<a href="{}" title="{}">{}, {}</a> at {}',
            reverse(f"admin:{page}", args=(obj.task_id,)),
            obj.task_name,
            "ok" if obj.task_success else "failed",
            shown.seconds(obj.task_started, obj.task_stopped),
            localtime(obj.task_started).strftime("%H:%M:%S") if obj.task_started else "—",
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ScheduleTimingForm if obj is not None else ScheduleAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["func", "name", "minutes", "next_run", "repeats"]
        return [
            "name",
            "func",
            "hook",
            "args",
            "kwargs",
            "cluster",
            "intended_date_kwarg",
            "schedule_type",
            "minutes",
            "next_run",
            "repeats",
            "task",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["name", *LOCKED_FIELDS, "schedule_type", "task"]


class RerunMixin(ReadOnly):
    """Task records are evidence: viewable with view permission, changed and deleted by nobody;
    re-running one is an Admin's, and only for a task this project ships. Listed by job, with
    the duration and the result (the random task name on hover)."""

    actions = ["resubmit_task"]
    list_display = ("job", "started", "duration", "result_short")
    list_display_links = ("job",)

    @admin.display(description="job", ordering="func")
    def job(self, obj):
        return format_html('<span title="{}">{}</span>', obj.name, shown.job_name(obj.func))

    @admin.display(description="duration")
    def duration(self, obj):
        return shown.seconds(obj.started, obj.stopped)

    @admin.display(description="result")
    def result_short(self, obj):
        return shown.short(obj.result)

    def has_rerun_permission(self, request):
        return request.user.has_perm(RERUN_PERM)

    @admin.action(description="Re-run the selected tasks (queued again)", permissions=["rerun"])
    def resubmit_task(self, request, queryset):
        queued = 0
        for task in queryset:
            refused = _rerun(task, request.user)
            if refused:
                messages.error(request, f"{task.name}: {refused}; not re-run.")
                continue
            self.log_change(request, task, "Re-run queued")
            queued += 1
        if queued:
            messages.info(request, f"{count(queued, 'task')} queued again.")


def _rerun(task, by) -> str | None:
    """Queue `task` again as `by`; why not, if it was not. A task queued for a person goes
    through its flow as `by` (permission, claim, history); a registered job runs as the
    schedule runs it; anything else is refused (its stored arguments may name someone)."""
    from django.core.exceptions import ObjectDoesNotExist
    from django_q.tasks import async_task

    if not is_project_task(task.func) or (task.hook and not is_project_task(task.hook)):
        return f"{task.func!r} is not a task this project ships"
    route = rerun_route(task.func)
    if route is not None:
        try:
            queued = route(*(task.args or ()), by=by, **(task.kwargs or {}))
        except (ObjectDoesNotExist, TypeError, ValueError):
            return "what it worked on no longer exists"
        return None if queued else "the same work is queued already"
    if task.func not in registered_jobs():
        return "only its own page can queue it again"
    async_task(
        task.func, *(task.args or ()), hook=task.hook, group=task.group, **(task.kwargs or {})
    )
    return None


class SuccessAdmin(RerunMixin, q_admin.TaskAdmin):
    pass


class FailureAdmin(RerunMixin, q_admin.FailAdmin):
    pass


class QueueAdmin(q_admin.QueueAdmin):
    readonly_fields = q_admin.QueueAdmin.fields

    def has_change_permission(self, request, obj=None):
        return False


for model, model_admin in (
    (Schedule, ScheduleAdmin),
    (Success, SuccessAdmin),
    (Failure, FailureAdmin),
    (OrmQ, QueueAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
