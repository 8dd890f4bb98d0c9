from django.contrib import admin
from django.urls import include, path

from chat import views
from chat.operations import dashboard

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("r/<str:room>/", views.room, name="room"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("ops/", dashboard.page, name="ops"),
    path("ops/sample", dashboard.sample, name="ops-sample"),
    path("ops/stream", dashboard.stream, name="ops-stream"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]
