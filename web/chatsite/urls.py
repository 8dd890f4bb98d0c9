from django.urls import include, path

from chat import ops, views

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("r/<str:room>/", views.room, name="room"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("ops/", ops.dashboard, name="ops"),
    path("ops/sample", ops.sample, name="ops-sample"),
    path("ops/stream", ops.stream, name="ops-stream"),
    path("accounts/", include("accounts.urls")),
]
