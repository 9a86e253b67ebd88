"""Invalidate cached balances when the ledger changes: in this process at commit (a rollback
changes nothing), and in other processes through NOTIFY sent inside the same transaction."""

from django.db import connections, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ledger.models import Account
from ledger.signals import accounts_changed

from .reference import TABLES


@receiver(accounts_changed, dispatch_uid="balances.invalidate_on_commit")
def invalidate_on_commit(sender, account_ids, using="default", **kwargs):
    user_ids = set(
        Account.objects.using(using)
        .filter(pk__in=list(account_ids), user_id__isnull=False)
        .values_list("user_id", flat=True)
        .distinct()
    )
    if not user_ids:
        return
    if connections[using].vendor == "postgresql":
        from .notify import notify

        notify(user_ids, using=using)

    def invalidate():
        from .cache import existing_cache

        cache = existing_cache()  # a process that never read balances has nothing to forget
        if cache is not None:
            cache.invalidate(user_ids)

    transaction.on_commit(invalidate, using=using)


def _forget_reference(table, using):
    def forget():
        from .cache import existing_cache

        cache = existing_cache()
        if cache is not None:
            cache.reference.invalidate(table)

    transaction.on_commit(forget, using=using)


@receiver(post_save, dispatch_uid="balances.reference_saved")
@receiver(post_delete, dispatch_uid="balances.reference_deleted")
def forget_reference_rows(sender, using="default", **kwargs):
    """This process forgets a saved token or currency at commit; other processes hear the
    table's trigger (balances migration 0003), which also covers queryset updates."""
    table = sender._meta.db_table
    if table in TABLES:
        _forget_reference(table, using)
