"""/graphql: authentication first (401/403 with no data), then strawberry."""

from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import GraphQLView

from .auth import Denied, authenticate
from .schema import schema

_graphql = GraphQLView.as_view(schema=schema, graphql_ide=None)


def _deny(status, message):
    response = JsonResponse({"errors": [{"message": message}]}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="graphql"'
    return response


@csrf_exempt  # token requests carry no cookie; session requests are checked below
def graphql_view(request):
    try:
        method = authenticate(request)
    except Denied as denied:
        return _deny(denied.status, denied.message)
    if method == "session":
        # A browser session keeps CSRF protection even though the view is exempt.
        rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if rejected is not None:
            return rejected
    return _graphql(request)
