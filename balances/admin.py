"""API tokens (created here, shown once, revocable) and the "User balances" lookup page."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from cryptoadmin.audit import record_change
from cryptoadmin.words import count

from .cache import BalanceCacheError, UnknownUser, get_user_balances
from .dashboard import cache_figures
from .models import SCOPES, ApiToken, default_scopes
from .table import FIELD_ACCOUNTS, USER_ID_RE, account_name, currency_rows


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope}: {what}") for scope, what in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        initial=default_scopes,
        help_text="What the token may do; fixed once it is issued.",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scopes"]


class UserBalancesForm(forms.Form):
    user_id = forms.CharField(max_length=128, label="User id")

    def clean_user_id(self):
        user_id = self.cleaned_data["user_id"].strip()
        if not USER_ID_RE.match(user_id):
            raise forms.ValidationError("Use 1 to 128 letters, digits and _ . : @ -")
        return user_id


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = [
        "name",
        "prefix",
        "status",
        "scope_list",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    readonly_fields = [
        "scope_list",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke"]

    @admin.display(description="status")
    def status(self, obj):
        return "revoked" if obj.is_revoked else "active"

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return " ".join(obj.scopes or ())

    def get_fields(self, request, obj=None):
        return ["name", "scopes"] if obj is None else ["name", *self.readonly_fields]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            # Scopes are fixed at issue: the change page edits the name only.
            kwargs["form"] = forms.modelform_factory(ApiToken, fields=["name"])
        return super().get_form(request, obj, change, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row records who made and used the token

    def has_revoke_permission(self, request):
        return request.user.has_perm("balances.revoke_apitoken")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        scopes = form.cleaned_data["scopes"]
        token, raw = ApiToken.issue(obj.name, created_by=request.user, scopes=scopes)
        obj.pk, obj.token_hash, obj.prefix, obj.created_at, obj.scopes = (
            token.pk,
            token.token_hash,
            token.prefix,
            token.created_at,
            token.scopes,
        )
        obj._state.adding = False
        obj._raw_token = raw  # shown once by response_add, stored nowhere

    def response_add(self, request, obj, post_url_continue=None):
        # Rendered directly, not through messages: the raw token never lands in a cookie or session.
        return TemplateResponse(
            request,
            "balances/token_created.html",
            {
                **self.admin_site.each_context(request),
                "title": "API token created",
                "token": obj,
                "raw_token": obj._raw_token,
                "opts": self.model._meta,
                "list_url": reverse("admin:balances_apitoken_changelist"),
            },
        )

    @admin.action(description="Revoke selected API tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        now = timezone.now()
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            # Conditional UPDATE: two operators revoking at once record one revocation.
            if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
                revoked_at=now, revoked_by=request.user
            ):
                self.log_change(request, token, "Revoked")
                record_change(
                    token, {"revoked_at": (None, now), "revoked_by": (None, request.user)}
                )
                revoked += 1
        self.message_user(request, f"Revoked {count(revoked, 'token')}.", messages.SUCCESS)

    # -- the lookup page -----------------------------------------------------------------------
    def get_urls(self):
        return [
            path(
                "user-balances/",
                self.admin_site.admin_view(self.user_balances_view),
                name="balances_user_balances",
            ),
            *super().get_urls(),
        ]

    def user_balances_view(self, request):
        if not request.user.has_perm("balances.view_user_balances"):
            raise PermissionDenied
        form = UserBalancesForm(request.GET or None)
        rows = None
        if form.is_valid():
            user_id = form.cleaned_data["user_id"]
            try:
                snapshot = get_user_balances(user_id)  # same cache as /graphql
            except UnknownUser:
                form.add_error("user_id", f"No user with id {user_id!r}.")
            except BalanceCacheError as exc:
                form.add_error(None, f"Balances are unavailable right now: {exc}")
            else:
                rows = currency_rows(snapshot)
        return TemplateResponse(
            request,
            "balances/user_balances.html",
            {
                **self.admin_site.each_context(request),
                "title": "User balances",
                "form": form,
                "rows": rows,
                # Headed as the accounts are named ("advanced trading locked"), the GraphQL
                # field name on hover: the admin's stylesheet capitalises headers.
                "columns": [(name, account_name(code)) for name, code in FIELD_ACCOUNTS.items()],
                "opts": self.model._meta,
                "panel": cache_figures(),
            },
        )
