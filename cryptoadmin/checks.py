"""Configuration that parses but cannot work: reported by `manage.py check` and at start-up."""
from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=False)
def check_configuration(app_configs, **kwargs):
    errors = []
    if not settings.DEBUG and settings.SECRET_KEY.startswith("insecure-"):
        errors.append(
            Error("SECRET_KEY is the development key while DEBUG is off.",
                  hint="Set SECRET_KEY to 50+ random characters.", id="cryptoadmin.E001")
        )
    if not settings.DEBUG and not settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS is empty and DEBUG is off: every request would be refused.",
                hint="Set ALLOWED_HOSTS to a comma-separated list, e.g. ALLOWED_HOSTS=admin.example.com",
                id="cryptoadmin.E002",
            )
        )
    if settings.NODE_RPC_TIMEOUT <= 0:
        errors.append(
            Error("NODE_RPC_TIMEOUT must be a positive number of seconds.", id="cryptoadmin.E003")
        )
    if settings.BROADCAST_LEASE_MARGIN < 1:
        errors.append(Error(
            "BROADCAST_LEASE_MARGIN must be at least 1 second: the node call must end before the send's lease does.",
            id="cryptoadmin.E004"))
    if not 0 < settings.BLOCKIO_NONCE_WINDOW < 3600:
        errors.append(Error(
            "BLOCKIO_NONCE_WINDOW must be between 1 and 3599 seconds: block.io accepts a repeated nonce after an hour.",
            id="cryptoadmin.E005"))
    return errors
