"""The product's HTTP API under /api/v1/ (django-ninja: pydantic schemas, the OpenAPI document
at /api/v1/openapi.json, its docs page at /api/v1/docs). Each resource is a router in a module
of its own, added below; every error leaves in one shape (api/errors.py)."""

from ninja import NinjaAPI

from . import addresses, errors, events, transfers, withdrawals
from .throttle import TokenRateThrottle

api = NinjaAPI(
    title="cryptoadmin API",
    version="1",
    description=(
        "Deposit addresses, withdrawal requests, transfers between a user's accounts and the "
        "events feed. Authorization: Bearer <token> with the operation's scope; money requests "
        'take an Idempotency-Key header. Errors: {"error": {"code", "message", "field"?}}.'
    ),
    urls_namespace="api",
    throttle=[TokenRateThrottle()],
)
errors.install(api)
api.add_router("", addresses.router)
api.add_router("", transfers.router)
api.add_router("", withdrawals.router)
api.add_router("/events", events.router)
