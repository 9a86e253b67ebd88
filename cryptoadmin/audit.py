"""Registered with django-auditlog in step 8."""
