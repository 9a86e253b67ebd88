"""Invalidate cached balances when the ledger changes: in this process at commit (a rollback
changes nothing), and in other processes through NOTIFY sent inside the same transaction."""

from django.db import connections, transaction
from django.dispatch import receiver

from ledger.models import Account
from ledger.signals import accounts_changed


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
