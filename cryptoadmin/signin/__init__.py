"""Staff sign-in: password + TOTP second factor (django-otp), lock-out (django-axes), the
client address they both count by. Issue 13, point 3."""
