from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from .protocol import revocation
        revocation.connect()   # logout ends that session's connections on every node
