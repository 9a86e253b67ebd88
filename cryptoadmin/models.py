# Login failures are counted by django-axes (its AccessAttempt table); the hand-written
# LoginFailure model was dropped in migration 0004_axes_and_audit_roles.
