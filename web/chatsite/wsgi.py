"""The Django WSGI app; a node wraps it with Socket.IO (see chat.assembly)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
application = get_wsgi_application()
