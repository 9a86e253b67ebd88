"""Under /api/v1/, a response that did not come from the API itself (Django's 404 for an unknown
path, 405 for a wrong method, a CSRF or host refusal) still leaves in the API's error shape."""

from .errors import error_response

PREFIX = "/api/v1/"
CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class ApiErrorShapeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        code = CODES.get(status, "internal_error" if status >= 500 else "error")
        shaped = error_response(status, code, response.reason_phrase or "error")
        if response.has_header("Allow"):
            shaped["Allow"] = response["Allow"]
        return shaped
