"""The balances query, exactly as the wallets app sends it:
query { user(id: "<userId>") { currencies { id enabled balance advancedTradingBalance
  advancedTradingLockedBalance lockedBalance withdrawLockedBalance stakingLockedBalance
  activeStakingBalance } } }
Amounts are decimal strings in the currency's units ("1.50000000")."""

from __future__ import annotations

import logging
import re

import strawberry
from django.conf import settings
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.config import StrawberryConfig

from cryptoadmin.errors import CryptoadminError

from .cache import BalanceCacheError, UnknownUser, get_cache, get_user_balances
from .table import FIELD_ACCOUNTS, USER_ID_RE, CurrencyRow, currency_rows

log = logging.getLogger(__name__)
DOCUMENT_CACHE_SIZE = 128  # distinct documents parsed and validated once per process


class BalanceQueryError(GraphQLError, CryptoadminError):
    """An error meant for the client; anything else is masked."""


def check_user_id(user_id) -> str:
    user_id = str(user_id)
    if not USER_ID_RE.match(user_id):
        raise BalanceQueryError(
            "malformed user id: 1 to 128 characters among letters, digits and _ . : @ -"
        )
    return user_id


def _currency_type():
    # Plain fields, each amount formatted when the row is made: a field with a resolver of its
    # own costs strawberry's resolver machinery per field and currency, most of a request.
    namespace = {"__annotations__": {"id": strawberry.ID, "enabled": bool}}
    for field_name in FIELD_ACCOUNTS:
        namespace["__annotations__"][field_name] = str
    cls = type("CurrencyBalances", (), namespace)
    return strawberry.type(cls, name="CurrencyBalances")


CurrencyBalances = _currency_type()


def _currency_balances(row: CurrencyRow):
    return CurrencyBalances(
        id=row.code, enabled=row.enabled, **dict(zip(FIELD_ACCOUNTS, row.amounts(), strict=True))
    )


@strawberry.type
class UserBalances:
    id: strawberry.ID
    currencies: list[CurrencyBalances]


@strawberry.type
class Query:
    @strawberry.field
    def user(self, id: strawberry.ID, info: strawberry.Info) -> UserBalances | None:
        user_id = check_user_id(id)
        try:
            # One snapshot for the whole answer: every field of a reply comes from the same load.
            snapshot = get_user_balances(user_id)
        except UnknownUser:
            raise BalanceQueryError(f"unknown user {user_id!r}") from None
        except BalanceCacheError:
            # The cause (a database error) stays in the server's log, not in the reply.
            log.exception("balances of user %r could not be loaded", user_id)
            raise BalanceQueryError("balances are unavailable right now, try again") from None
        rows = get_cache().reference.currencies()
        reads = getattr(getattr(info.context, "request", None), "balances_reads", None)
        if reads is not None:
            reads.append((user_id, snapshot, rows))  # what the reply depends on (answers.py)
        currencies = [_currency_balances(row) for row in currency_rows(snapshot, rows)]
        return UserBalances(id=user_id, currencies=currencies)


def _mask(error) -> bool:
    # Messages of our BalanceQueryError and of GraphQL parsing/validation (the limits below)
    # reach the client; others are masked.
    return error.original_error is not None and not isinstance(
        error.original_error, BalanceQueryError
    )


def build_schema(introspection=None):
    """The schema with its abuse limits. Parsing (tokens) and validation (aliases, depth,
    introspection) run before any resolver, so an over-limit document costs no SQL query and
    never touches the balance cache. `introspection` defaults to settings.GRAPHQL_INTROSPECTION
    (on only in DEBUG). A repeated document is parsed and validated once: strawberry's caches,
    bounded, keyed by the document and by rule classes made here once (the limiters' own
    factories would make new classes per request, and no validation would ever be reused)."""
    if introspection is None:
        introspection = settings.GRAPHQL_INTROSPECTION
    tokens, aliases, depth = (
        settings.GRAPHQL_MAX_TOKENS,
        settings.GRAPHQL_MAX_ALIASES,
        settings.GRAPHQL_MAX_DEPTH,
    )
    rules = [
        max_aliases.create_validator(aliases),
        query_depth_limiter.create_validator(depth, None),
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions = [
        lambda: MaxTokensLimiter(max_token_count=tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: MaskErrors(should_mask_error=_mask),
    ]
    # Suggestions ("Did you mean 'lockedBalance'?") would list the schema's names anyway.
    config = StrawberryConfig(disable_field_suggestions=not introspection)
    return Schema(query=Query, extensions=extensions, config=config)


_SUGGESTION = re.compile(r"\s*Did you mean .*\Z", re.DOTALL)


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None):
        """An expected error (unknown user, a document over the limits) is the client's: one
        line, no traceback. Anything else is logged with its traceback as strawberry does."""
        if self.config.disable_field_suggestions:
            for error in errors:  # fields, arguments, types: strawberry strips fields' only
                error.message = _SUGGESTION.sub("", error.message)
        unexpected = []
        for error in errors:
            if error.original_error is None or isinstance(error.original_error, BalanceQueryError):
                log.info("graphql: %s", error.message)
            else:
                unexpected.append(error)
        if unexpected:
            super().process_errors(unexpected, execution_context)


schema = build_schema()
