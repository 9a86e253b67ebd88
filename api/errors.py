"""The one error shape of /api/v1/: `{"error": {"code", "message", "field"?}}`.

Views and services raise `ApiError`; every other exception reaching the API (ninja's
validation errors, a missing object, a refused permission, a bug) is turned into the same
shape by the handlers `install` registers, so a client never sees an HTML page or a traceback."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from cryptoadmin.errors import CryptoadminError

log = logging.getLogger(__name__)


class ApiError(CryptoadminError):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def body(code: str, message: str, field: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(status: int, code: str, message: str, field: str | None = None):
    response = JsonResponse(body(code, message, field), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _field(loc) -> str | None:
    # ninja locates an error as ("body", "payload", "transfers", 3, "amount"): keep the rest.
    parts = [
        str(part) for part in loc if part not in ("body", "payload", "header", "query", "path")
    ]
    return ".".join(parts) or None


def _validation(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    message = first.get("msg", "invalid request")
    return error_response(400, "invalid", message, _field(first.get("loc", ())))


def _http_error(request, exc: HttpError):
    # ninja raises these for a body it cannot parse (400) and the like.
    code = "invalid" if exc.status_code == 400 else "http_error"
    return error_response(exc.status_code, code, str(exc))


def _fallback(request, exc: Exception):
    if isinstance(exc, Http404):
        return error_response(404, "not_found", "no such object")
    if isinstance(exc, PermissionDenied):
        return error_response(403, "forbidden", "not allowed")
    if isinstance(exc, RequestDataTooBig):
        return error_response(400, "request_too_large", "the request body is too large")
    if isinstance(exc, SuspiciousOperation):
        return error_response(400, "bad_request", "the request was refused")
    if isinstance(exc, DatabaseError):
        log.exception("database error in %s", request.path)
        return error_response(503, "unavailable", "the database is unavailable; retry later")
    log.exception("unexpected error in %s", request.path)
    return error_response(500, "internal_error", "internal error; retry later")


def install(api) -> None:
    """Every exception the API can meet, mapped to the error shape."""
    api.add_exception_handler(
        ApiError, lambda r, e: error_response(e.status, e.code, e.message, e.field)
    )
    api.add_exception_handler(ValidationError, _validation)
    api.add_exception_handler(
        AuthenticationError,
        lambda r, e: error_response(401, "unauthenticated", "send Authorization: Bearer <token>"),
    )
    api.add_exception_handler(
        Throttled, lambda r, e: error_response(429, "rate_limited", "too many requests; slow down")
    )
    api.add_exception_handler(HttpError, _http_error)
    # ninja answers these two itself unless told: they get the shape too.
    api.add_exception_handler(Http404, _fallback)
    api.add_exception_handler(PermissionDenied, _fallback)
    api.add_exception_handler(Exception, _fallback)
