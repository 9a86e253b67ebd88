from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django_otp import match_token

from .services import has_second_factor


class SecondFactorLoginForm(AdminAuthenticationForm):
    """The admin login form with a code field: a user with a device must type a code from their
    authenticator (or one recovery code). A user without one signs in with the password and is
    then held on the enrolment page while OTP_REQUIRED is on."""

    otp_token = forms.CharField(
        label="Authentication code",
        required=False,
        max_length=32,
        strip=True,
        help_text="6 digits from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_otp": "Enter the current code from your authenticator app, or a recovery code.",
    }

    def clean(self):
        cleaned = super().clean()  # the password, through django-axes's backend first
        user = self.get_user()
        if user is None or not has_second_factor(user):
            return cleaned
        token = (cleaned.get("otp_token") or "").replace(" ", "")
        device = match_token(user, token) if token else None
        if device is None:
            # A wrong code is a failed sign-in like a wrong password: django-axes counts it, so a
            # stolen password does not buy unlimited guesses at the code.
            user_login_failed.send(
                sender=__name__, credentials={"username": user.get_username()}, request=self.request
            )
            raise forms.ValidationError(self.error_messages["invalid_otp"], code="invalid_otp")
        user.otp_device = device  # django_otp marks the session verified when the login happens
        return cleaned
