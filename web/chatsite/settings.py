"""Django settings of a chat node, read from the environment once.

Every CHAT_* variable is documented in README.md; the defaults run the
three-node development cluster on loopback.
"""
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
env = os.environ.get

_DEV_SECRET = "dev-insecure-secret-key-change-me"
SECRET_KEY = env("DJANGO_SECRET_KEY", _DEV_SECRET)
DEBUG = env("DJANGO_DEBUG", "0") == "1"
if SECRET_KEY == _DEV_SECRET:
    print("WARNING: DJANGO_SECRET_KEY is not set; using the insecure development key. "
          "Set it before exposing this node to anyone.", file=sys.stderr)
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "chat",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "chatsite.urls"
WSGI_APPLICATION = "chatsite.wsgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
}]
DATABASES = {}  # a node keeps no database: the broker holds the conversation
USE_TZ = True
TIME_ZONE = "UTC"  # Django would otherwise set the process TZ to America/Chicago
STATIC_URL = "static/"
STATICFILES_DIRS = [
    ("vendor", BASE_DIR / "node_modules" / "socket.io-client" / "dist"),
]
# Serve straight from the finders (app static/ and the npm build): no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# The chat node.
CHAT_NODE_NAME = env("CHAT_NODE_NAME", "node1")
_broker_host = env("CHAT_BROKER_HOST", "127.0.0.1")
CHAT_BROKER_INTAKE = env("CHAT_BROKER_INTAKE", "tcp://%s:%s" % (_broker_host, env("CHAT_BROKER_INTAKE_PORT", "5555")))
CHAT_BROKER_PUBLISH = env("CHAT_BROKER_PUBLISH", "tcp://%s:%s" % (_broker_host, env("CHAT_BROKER_PUBLISH_PORT", "5556")))
CHAT_BROKER_SNAPSHOT = env("CHAT_BROKER_SNAPSHOT", "tcp://%s:%s" % (_broker_host, env("CHAT_BROKER_SNAPSHOT_PORT", "5557")))
CHAT_HISTORY_SIZE = int(env("CHAT_HISTORY_SIZE", "50"))
# How long a message may wait to be sequenced before the client hears
# `unavailable` (the contract's default, 5 s).
CHAT_ACK_TIMEOUT_MS = int(env("CHAT_ACK_TIMEOUT_MS", "5000"))
# Must match the broker's CHAT_BROKER_HEARTBEAT_MS; three missed beats = down.
CHAT_BROKER_HEARTBEAT_MS = int(env("CHAT_BROKER_HEARTBEAT_MS", "1000"))
CHAT_BROKER_DEAD_AFTER_MS = int(env("CHAT_BROKER_DEAD_AFTER_MS", "3000"))
# Per connection: sustained messages per second and the burst allowed above it.
CHAT_RATE_PER_S = float(env("CHAT_RATE_PER_S", "20"))
CHAT_RATE_BURST = int(env("CHAT_RATE_BURST", "40"))
CHAT_ZMQ_HWM = int(env("CHAT_ZMQ_HWM", "100000"))
# Limits, each refused with a clear error (docs/PROTOCOL-EXTENSIONS.md).
CHAT_MAX_PAYLOAD_BYTES = int(env("CHAT_MAX_PAYLOAD_BYTES", "16384"))
CHAT_MAX_ROOMS_PER_CONNECTION = int(env("CHAT_MAX_ROOMS_PER_CONNECTION", "50"))
CHAT_MAX_CONNECTIONS = int(env("CHAT_MAX_CONNECTIONS", "10000"))
# Packets waiting for one client before it counts as not reading and is cut off.
CHAT_MAX_SEND_QUEUE = int(env("CHAT_MAX_SEND_QUEUE", "1000"))
# Engine.IO heartbeat: the node pings every interval; a client that does not
# answer within the timeout is disconnected (and its members leave).  Whole
# seconds: the Engine.IO handshake tells clients int(seconds) * 1000 ms.
CHAT_PING_INTERVAL_S = int(env("CHAT_PING_INTERVAL_S", "25"))
CHAT_PING_TIMEOUT_S = int(env("CHAT_PING_TIMEOUT_S", "20"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s " + CHAT_NODE_NAME + " %(name)s: %(message)s"}},
    "filters": {"skip_healthz_503": {"()": "chat.logfilters.SkipHealthz503"},
                "demote_closed_session": {"()": "chat.logfilters.DemoteClosedSession"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["skip_healthz_503", "demote_closed_session"]}},
    "root": {"handlers": ["console"], "level": env("CHAT_LOG_LEVEL", "INFO")},
    "loggers": {
        "socketio": {"level": "WARNING"},
        "engineio": {"level": "WARNING"},
        "geventwebsocket": {"level": "WARNING"},
    },
}
