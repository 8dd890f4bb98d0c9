from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "reading"
    default_auto_field = "django.db.models.BigAutoField"
