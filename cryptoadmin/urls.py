from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from api.main import api
from balances.views import graphql_view
from ops.activity import activity_view
from ops.health import health
from ops.metrics import metrics_view
from ops.person import new_address_view, person_view

from . import home
from .signin.forms import SecondFactorLoginForm
from .signin.views import enrol

admin.site.site_header = "cryptoadmin"
admin.site.site_title = "cryptoadmin"
admin.site.index_title = "Back office"
# The home page lists every model already; on a list the sidebar would take 300 px from the
# columns an operator reads (lists fit 1440 px without it).
admin.site.enable_nav_sidebar = False
# Password + TOTP code on the one login page; django-axes counts its failures.
admin.site.login_form = SecondFactorLoginForm

urlpatterns = [
    # The site is the admin: "/" and the admin's "View site" lead there.
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/second-factor/", admin.site.admin_view(enrol), name="second-factor"),
    path("admin/needs-person/", home.fragment, name="needs-person"),
    path("admin/activity/", admin.site.admin_view(activity_view), name="activity"),
    path("admin/person/<str:user_id>/", admin.site.admin_view(person_view), name="person"),
    path(
        "admin/person/<str:user_id>/address/",
        admin.site.admin_view(new_address_view),
        name="person-address",
    ),
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("graphql", graphql_view, name="graphql"),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", api.urls),
]
