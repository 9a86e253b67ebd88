"""manage.py issue_api_token NAME --scope S [--scope S...] [--by USERNAME]: a new API token for
automation, as the admin issues one. The raw token is printed alone on the last line and
stored nowhere; who issued it is recorded (the person named by --by, else the system)."""

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError

from ledger import actors

from ...models import SCOPES, ApiToken


class Command(BaseCommand):
    help = "Issue an API token with the given scopes; prints the raw token on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who or what uses it, e.g. 'wallets app'")
        parser.add_argument(
            "--scope", action="append", required=True, choices=sorted(SCOPES), dest="scopes"
        )
        parser.add_argument("--by", help="username of the person issuing it (recorded)")

    def handle(self, name, scopes, by=None, **options):
        if not name.strip() or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters")
        who = actors.SYSTEM
        if by:
            who = get_user_model().objects.filter(username=by).first()
            if who is None:
                raise CommandError(f"no user named {by!r}")
        token, raw = ApiToken.issue(name.strip(), created_by=actors.person(who), scopes=scopes)
        actors.log_action(who, token, f"Issued with scopes {' '.join(token.scopes)}", added=True)
        self.stdout.write(f"Issued API token {token} with scopes {' '.join(token.scopes)}.")
        self.stdout.write("Shown once, stored nowhere:")
        self.stdout.write(raw)
