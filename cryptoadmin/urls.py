from django.contrib import admin
from django.urls import path

from .health import health
from .throttle import throttled
from balances.views import graphql_view
from ops.metrics import metrics_view

admin.site.site_header = "cryptoadmin"
admin.site.site_title = "cryptoadmin"
admin.site.index_title = "Back office"

urlpatterns = [
    # Before admin.site.urls so the throttle wraps the real login view.
    path("admin/login/", throttled(admin.site.login), name="admin-login-throttled"),
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("graphql", graphql_view, name="graphql"),
    path("metrics", metrics_view, name="metrics"),
]
