from django.contrib import admin
from django.urls import path

from balances.views import graphql_view

admin.site.site_header = "cryptoadmin"
admin.site.site_title = "cryptoadmin"
admin.site.index_title = "Back office"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("graphql", graphql_view, name="graphql"),
]
