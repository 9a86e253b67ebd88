"""/graphql: authentication first (401/403 with no data), then strawberry."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import GraphQLView

from .answers import Answers
from .auth import Denied, authenticate
from .schema import schema

_graphql = GraphQLView.as_view(schema=schema, graphql_ide=None)
# Replies to repeated queries, served while their balances and currencies are unchanged.
answers = Answers(settings.BALANCES_ANSWER_CACHE_SIZE)


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
    if request.method != "POST":
        return _graphql(request)
    body = request.body
    content = answers.lookup(body)
    if content is not None:
        return HttpResponse(content, content_type="application/json")
    request.balances_reads = []  # the resolver notes what the reply is computed from
    response = _graphql(request)
    if response.status_code == 200 and b'"errors"' not in response.content:
        answers.keep(body, request.balances_reads, response.content)
    return response
