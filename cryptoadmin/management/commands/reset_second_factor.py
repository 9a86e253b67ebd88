from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cryptoadmin.signin.services import reset_devices


class Command(BaseCommand):
    help = (
        "Remove a user's second-factor devices (authenticator and recovery codes): they enrol a "
        "new authenticator at their next sign-in. For a lost phone."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, username, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"no user {username!r}") from None
        removed = reset_devices(user)
        self.stdout.write(
            f"removed {removed} second-factor device(s) of {username}; "
            "they enrol a new authenticator at their next sign-in"
        )
