from django.urls import include, path

from chat import views

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("r/<str:room>/", views.room, name="room"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("accounts/", include("accounts.urls")),
]
