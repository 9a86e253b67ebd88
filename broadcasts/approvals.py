"""Four eyes on a withdrawal: approve, reject or cancel it (given back 204 -> 201 in the
same transaction as its state), and who may approve it."""

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from cryptoadmin import faults
from ledger import actors
from ledger import services as ledger
from ledger.models import Transaction

from . import events
from .errors import DecisionError
from .models import BroadcastMember, OutgoingTransaction

APPROVE_PERM = "broadcasts.approve_outgoingtransaction"
CANCEL_PERM = "broadcasts.cancel_outgoingtransaction"


def _lost_race(outgoing_id: int, verb: str) -> DecisionError:
    row = OutgoingTransaction.objects.filter(pk=outgoing_id).values_list("state", flat=True).first()
    label = OutgoingTransaction.State(row).label if row else "gone"
    return DecisionError(
        f"outgoing #{outgoing_id} cannot be {verb}: it is {label} now (someone acted first)"
    )


def approve(outgoing: OutgoingTransaction, user) -> OutgoingTransaction:
    """Four eyes: a person other than the one who queued it (the superuser included) lets an
    awaiting withdrawal into the queue. A conditional UPDATE on 'awaiting approval'."""
    if not actors.allowed(user, APPROVE_PERM):
        raise DecisionError("you do not have the permission to approve outgoing transactions")
    if outgoing.created_by_id is not None and outgoing.created_by_id == user.pk:
        raise DecisionError(
            f"outgoing #{outgoing.pk} was queued by you: another person must approve it"
        )
    with transaction.atomic():
        updated = (
            OutgoingTransaction.objects.filter(
                pk=outgoing.pk,
                state=OutgoingTransaction.State.AWAITING_APPROVAL,
            )
            .exclude(created_by=user)
            .update(
                state=OutgoingTransaction.State.QUEUED,
                approved_by=user,
                approved_at=timezone.now(),
            )
        )
        if not updated:
            raise _lost_race(outgoing.pk, "approved")
        events.emit("withdrawal.approved", [outgoing.pk])
    outgoing.refresh_from_db()
    return outgoing


def _refusal(outgoing_id: int, verb: str) -> DecisionError:
    """Why a give-back's conditional UPDATE took no row."""
    if _live_signed_attempts(outgoing_id).exists():
        return DecisionError(
            f"outgoing #{outgoing_id} was part of a signed transaction that may still "
            "confirm: it is paid again only by a transaction conflicting with it, and "
            f"cannot be {verb} until that one is provably dead"
        )
    return _lost_race(outgoing_id, verb)


def _give_back(
    outgoing: OutgoingTransaction, user, reason: str, state, from_states, verb
) -> OutgoingTransaction:
    reason = _check_give_back(outgoing, user, reason, from_states, verb)
    now = timezone.now()
    # The old state is the one the person saw (the instance they acted on): if anyone changed
    # it since (an approval, the broadcaster), they decided on something else, and are told.
    seen = outgoing.state
    row = OutgoingTransaction.objects.select_related("account", "hold_account").get(pk=outgoing.pk)
    with transaction.atomic():
        entry = ledger.post(
            row.hold_account,
            row.account,
            row.amount,
            Transaction.Kind.RETURNED,
            label=f"outgoing #{row.pk} {verb}: {reason}"[:255],
            created_by=user,
            created_at=now,
        )
        faults.point("outgoing.before_return_update")
        # The conditional UPDATE decides, with the entry (the CHECK wants both at once): against
        # another person, an approval or a collecting broadcaster exactly one wins (the loser's
        # entry rolls back); never while a signed transaction that contained it may still
        # confirm (the user would have it twice; in the UPDATE, so a signing cannot slip in).
        updated = (
            OutgoingTransaction.objects.filter(pk=row.pk, state=seen)
            .exclude(Exists(_live_signed_attempts(OuterRef("pk"))))
            .update(
                state=state, closed_by=user, closed_at=now, close_reason=reason, return_entry=entry
            )
        )
        if not updated:
            raise _refusal(row.pk, verb)
        events.emit(f"withdrawal.{state}", [row.pk])
        # Any return, for consumers that follow the balance rather than the decision.
        events.emit("withdrawal.returned", [row.pk])
        faults.point("outgoing.before_return_commit")
    outgoing.refresh_from_db()
    return outgoing


def _live_signed_attempts(outgoing_id):
    """A withdrawal's memberships of signed broadcasts not recorded dead."""
    return BroadcastMember.objects.filter(
        outgoing_id=outgoing_id, broadcast__dead_reason=""
    ).exclude(broadcast__raw_tx="")


# The action a person takes, by the state it leads to ("rejected" -> "reject").
_ACTIONS = {"rejected": "reject", "cancelled": "cancel"}


def _check_give_back(outgoing: OutgoingTransaction, user, reason: str, from_states, verb) -> str:
    """A give-back's checks before anything is written; returns the reason, stripped."""
    if not actors.allowed(user, CANCEL_PERM):
        raise DecisionError(
            f"you do not have the permission to {_ACTIONS[verb]} outgoing transactions"
        )
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("give a reason")
    if outgoing.state not in from_states:
        raise DecisionError(
            f"outgoing #{outgoing.pk} is {OutgoingTransaction.State(outgoing.state).label}: "
            f"it cannot be {verb}"
        )
    return reason


def reject(outgoing: OutgoingTransaction, user, reason: str) -> OutgoingTransaction:
    """An awaiting withdrawal refused: its amount goes back 204 -> 201 in the same transaction."""
    return _give_back(
        outgoing,
        user,
        reason,
        OutgoingTransaction.State.REJECTED,
        [OutgoingTransaction.State.AWAITING_APPROVAL],
        "rejected",
    )


def cancel(outgoing: OutgoingTransaction, user, reason: str) -> OutgoingTransaction:
    """A withdrawal not in a broadcast (awaiting, queued or needing attention) stopped: its
    amount goes back 204 -> 201 in the same transaction. One in a broadcast cannot be."""
    return _give_back(
        outgoing,
        user,
        reason,
        OutgoingTransaction.State.CANCELLED,
        list(OutgoingTransaction.STOPPABLE_STATES),
        "cancelled",
    )


def who_may_approve(outgoing: OutgoingTransaction) -> list[str]:
    """The usernames of the active people who could approve this withdrawal: the permission
    (directly, through a group, or as superuser) and not the person who queued it."""
    from django.contrib.auth import get_user_model

    people = get_user_model().objects.with_perm(
        APPROVE_PERM, include_superusers=True, backend="django.contrib.auth.backends.ModelBackend"
    )
    if outgoing.created_by_id is not None:
        people = people.exclude(pk=outgoing.created_by_id)
    return sorted(people.values_list(get_user_model().USERNAME_FIELD, flat=True))
