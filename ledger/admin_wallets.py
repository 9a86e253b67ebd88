"""The wallets' admin: their node settings as a form per backend, "Test connection", retiring
one, rescans, reconciliation and the import page's entry point."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.urls import path, reverse
from django.utils.html import format_html

from . import actors, wallet_form
from .admin import figures_table
from .imports import IMPORT_PERM
from .models import Wallet


class PollingFilter(admin.SimpleListFilter):
    title = "polling"
    parameter_name = "polling"

    def lookups(self, request, model_admin):
        return [("failing", "failing (node down)")]

    def queryset(self, request, queryset):
        # The wallets the poller works on whose last cycle failed: the home page's "nodes down".
        if self.value() == "failing":
            return queryset.active().exclude(last_poll_error="")
        return queryset


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    form = wallet_form.WalletForm
    list_display = ["name", "currency", "backend", "enabled", "node", "reconcile_link"]
    change_list_template = "ledger/wallet_change_list.html"
    change_form_template = "ledger/wallet_change_form.html"
    list_filter = ["backend", "currency", "enabled", PollingFilter]
    list_select_related = ["currency"]

    @admin.display(description="backend settings")
    def settings_masked(self, obj):
        return figures_table(sorted(obj.backend_settings_masked().items()))

    @admin.display(description="node")
    def node(self, obj):
        # The list names where the node is (credentials masked); the rest is on the wallet's page.
        settings = obj.backend_settings_masked()
        where = settings.get("url") or settings.get("base_url") or settings.get("rpc_url") or "—"
        return format_html("<code>{}</code>", where)

    @admin.display(description="last reconciliation")
    def reconciliation_figures(self, obj):
        from .reconcile import Reconciliation

        if not obj.last_reconciliation:
            return "never"
        result, c = Reconciliation.from_dict(obj.last_reconciliation), obj.currency
        return figures_table(
            [
                ("node balance", c.amount(result.node_balance)),
                ("books", c.amount(result.books_balance)),
                ("awaiting credit", c.amount(result.uncredited)),
                ("difference", c.amount(result.unaccounted)),
                ("missing deposits", len(result.missing_deposits)),
            ]
        )

    @admin.display(description="last rescan result")
    def rescan_figures(self, obj):
        result = obj.last_rescan_result or {}
        return figures_table([(k.replace("_", " "), v) for k, v in sorted(result.items())])

    def has_delete_permission(self, request, obj=None):
        return False  # its accounts and ledger rows protect it: a Delete would only fail

    def get_actions(self, request):
        # Wallets are never deleted (their accounts and addresses protect them): no action
        # that is always refused.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    actions = ["rescan_now", "retire"]
    STATUS_FIELDS = [
        "last_block_hash",
        "last_polled_at",
        "last_poll_error",
        "last_poll_error_at",
        "last_rescan_at",
        "rescan_figures",
        "last_reconciled_at",
        "reconciliation_figures",
    ]

    def get_fieldsets(self, request, obj=None):
        # The node settings of the wallet's backend as fields; an existing wallet shows them
        # masked beside the fields that replace them (secrets never rendered back).
        if obj is None:
            return [
                (None, {"fields": ["name", "currency", "backend", "enabled"]}),
                *[(t, {"fields": f}) for t, f in wallet_form.FIELDSETS.values()],
            ]
        title, fields = wallet_form.FIELDSETS[obj.backend]
        return [
            (None, {"fields": ["name", "currency", "backend", "enabled", "retired_at"]}),
            (title, {"fields": ["settings_masked", *fields]}),
            ("Status", {"fields": self.STATUS_FIELDS}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return (
            ["settings_masked", "currency", "backend", "retired_at", *self.STATUS_FIELDS]
            if obj is not None
            else []
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = wallet_form.WalletForm
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.action(description="Retire (disable for good, free the name)", permissions=["retire"])
    def retire(self, request, queryset):
        from .wallets import RetireRefused, retire

        for wallet in queryset:
            try:
                retire(wallet, by=request.user)
            except RetireRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Retired {wallet.name}.", messages.SUCCESS)

    def has_retire_permission(self, request):
        from .wallets import RETIRE_PERM

        return actors.allowed(request.user, RETIRE_PERM)

    def test_connection_view(self, request):
        """Tries the settings typed in the form against the node: a POST that saves nothing."""
        from django.http import JsonResponse

        from .wallets import try_connection

        if request.method != "POST":
            return JsonResponse({"ok": False, "code": "post_only"}, status=405)
        obj = None
        if (request.POST.get("object_id") or "").isdigit():
            obj = Wallet.objects.filter(pk=int(request.POST["object_id"])).first()
        if not (self.has_add_permission(request) or self.has_change_permission(request, obj)):
            raise PermissionDenied
        # The page's own form: an existing wallet's page sends no currency or backend (shown
        # read-only there).
        form = self.get_form(request, obj, change=obj is not None)(request.POST, instance=obj)
        if not form.is_valid():
            errors = {k: [str(m) for m in v] for k, v in form.errors.items()}
            return JsonResponse({"ok": False, "code": "invalid", "errors": errors}, status=400)
        ok, code, message = try_connection(form.instance)
        return JsonResponse({"ok": ok, "code": code, "message": message})

    @admin.action(description="Rescan now (queued)", permissions=["rescan"])
    def rescan_now(self, request, queryset):
        from .rescan import queue_rescan

        count = queue_rescan(queryset, by=request.user)
        messages.info(
            request,
            f"Rescan queued for {count} wallet{'s' if count != 1 else ''}: the result appears "
            "on the wallet's page when done.",
        )

    def has_rescan_permission(self, request):
        from .rescan import RESCAN_PERM

        return actors.allowed(request.user, RESCAN_PERM)

    def get_urls(self):
        from . import admin_views

        wrap = self.admin_site.admin_view
        return [
            path(
                "import/",
                wrap(lambda r: admin_views.import_wallet_balance_view(self, r)),
                name="ledger_wallet_import",
            ),
            path(
                "test-connection/",
                wrap(self.test_connection_view),
                name="ledger_wallet_test_connection",
            ),
            path(
                "<int:object_id>/reconcile/",
                wrap(lambda r, object_id: admin_views.reconcile_view(self, r, object_id)),
                name="ledger_wallet_reconcile",
            ),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_import": actors.allowed(request.user, IMPORT_PERM),
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description="reconcile")
    def reconcile_link(self, obj):
        return format_html(
            '<a href="{}">Reconcile</a>', reverse("admin:ledger_wallet_reconcile", args=[obj.pk])
        )
