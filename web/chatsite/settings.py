"""Django settings of a chat node, read from the environment once.

Every CHAT_* variable is documented in docs/CONFIGURATION.md; the defaults, shared with
the broker, are declared once in :mod:`chatstream.config` and run the
three-node development cluster on loopback.  ``manage.py runnode`` puts its
``--name``/``--host``/``--port`` into the environment before this is read.
"""
import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from chatsite import database, secret_key
from chatstream import config as shared
from chatstream.config import env_int

BASE_DIR = Path(__file__).resolve().parent.parent
env = os.environ.get

_DEV_SECRET = "dev-insecure-secret-key-change-me"
DEBUG = env("DJANGO_DEBUG", "0") == "1"
# DJANGO_SECRET_KEY, else DJANGO_SECRET_KEY_FILE (default var/secret_key, made by scripts/setup).
SECRET_KEY = secret_key.read(os.environ, BASE_DIR.parent / shared.SECRET_KEY_FILE)
if SECRET_KEY is None and not DEBUG:
    raise ImproperlyConfigured(
        "No secret key: set DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE (scripts/setup makes "
        "var/secret_key); every node of a cluster needs the same one. DJANGO_DEBUG=1 runs "
        "with an insecure development key instead.")
if SECRET_KEY is None:
    SECRET_KEY = _DEV_SECRET
    print("WARNING: no DJANGO_SECRET_KEY; DJANGO_DEBUG=1 uses the insecure development key.",
          file=sys.stderr)
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",        # the archive, read-only for staff (archive/admin.py)
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "archive",
    "rooms",
    "chat",
    "moderation",
    "reading",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]
# Content-Security-Policy (django-csp: Django 5.2 has none of its own).  The pages have
# no inline script or style: everything comes from this origin, the socket too.
CONTENT_SECURITY_POLICY = {"DIRECTIVES": {
    "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"],
    "img-src": ["'self'", "data:"], "connect-src": ["'self'"], "object-src": ["'none'"],
    "base-uri": ["'none'"], "form-action": ["'self'"], "frame-ancestors": ["'none'"],
}}
# Behind the balancer: the nodes believe X-Forwarded-Proto only from CHAT_TRUSTED_PROXIES
# (chat/edge.py drops it from anyone else), so a request that came over TLS is secure.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Production over https only (docs/OPERATIONS.md "TLS"): redirects, Secure cookies and HSTS
# from Django too; /healthz and /metrics stay plain for the balancer's checks and the
# scrapers (node ports).
if env("DJANGO_HTTPS", "0") == "1":
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env("DJANGO_HSTS_PRELOAD", "0") == "1"
ROOT_URLCONF = "chatsite.urls"
WSGI_APPLICATION = "chatsite.wsgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth",
                                       "django.contrib.messages.context_processors.messages"]},
}]
# Accounts, sessions and the conversation's archive (docs/OPERATIONS.md "Accounts and the database").
DATABASES = database.from_env(os.environ, BASE_DIR.parent)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"     # its username is its nick (accounts/models.py)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = LOGOUT_REDIRECT_URL = "lobby"
# Sessions in the shared database, so a session made on one node is valid on every node
# (the Socket.IO handshake reads it: chat/protocol/identity.py).  The cookie stays HttpOnly and Lax.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# Django's PBKDF2 hashed in threads, off the gevent loop (accounts/hashers.py); the others
# stay to read hashes made by them.
PASSWORD_HASHERS = [
    "accounts.hashers.OffLoopPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# Threads hashing passwords per node: each hash takes a core for ~0.25 s.
CHAT_PASSWORD_HASH_THREADS = env_int("CHAT_PASSWORD_HASH_THREADS", 2)
# Login and signup throttle, counted in the shared database (accounts/throttle.py): login
# and signup POSTs per client address, failed logins per username, per window.  An office
# behind one NAT address logs in a few times a day per person; a guesser tries thousands.
CHAT_AUTH_WINDOW_S = env_int("CHAT_AUTH_WINDOW_S", 900)
CHAT_AUTH_ATTEMPTS_PER_ADDRESS = env_int("CHAT_AUTH_ATTEMPTS_PER_ADDRESS", 100)
CHAT_AUTH_FAILURES_PER_USERNAME = env_int("CHAT_AUTH_FAILURES_PER_USERNAME", 10)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
USE_TZ = True
TIME_ZONE = "UTC"  # Django would otherwise set the process TZ to America/Chicago
STATIC_URL = "static/"
STATICFILES_DIRS = [
    ("vendor", BASE_DIR / "node_modules" / "socket.io-client" / "dist"),
]
# Serve straight from the finders (app static/ and the npm build): no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# The chat node (the shared defaults' reasons are in chatstream/config.py).
CHAT_NODE_NAME = env("CHAT_NODE_NAME", shared.NODE_NAME)
CHAT_NODE_HOST = env("CHAT_NODE_HOST", shared.NODE_HOST)
CHAT_NODE_PORT = env_int("CHAT_NODE_PORT", shared.NODE_PORT)
_broker = shared.broker_endpoints()       # where the broker binds by the same rule
CHAT_BROKER_INTAKE = _broker["intake"]
CHAT_BROKER_PUBLISH = _broker["publish"]
CHAT_BROKER_SNAPSHOT = _broker["snapshot"]
# broker2 of the failover pair, {"intake", "publish", "snapshot"} or None (chatstream/config.py)
CHAT_BROKER2 = shared.broker2_endpoints()
# Every broker pair the rooms are spread over (CHAT_BROKERS or CHAT_BROKER_PAIRS): the first
# is the two above; with one, the node runs as a single pair's (chatstream/config.py).
CHAT_BROKER_PAIRS = shared.broker_pairs()
CHAT_HISTORY_SIZE = env_int("CHAT_HISTORY_SIZE", shared.HISTORY_SIZE)
CHAT_ACK_TIMEOUT_MS = env_int("CHAT_ACK_TIMEOUT_MS", shared.ACK_TIMEOUT_MS)
CHAT_FOLLOW_GRACE_S = env_int("CHAT_FOLLOW_GRACE_S", shared.FOLLOW_GRACE_S)
CHAT_FOLLOW_GRACE_ROOMS = env_int("CHAT_FOLLOW_GRACE_ROOMS", shared.FOLLOW_GRACE_ROOMS)
# Must match the broker's CHAT_BROKER_HEARTBEAT_MS.
CHAT_BROKER_HEARTBEAT_MS = env_int("CHAT_BROKER_HEARTBEAT_MS", shared.HEARTBEAT_MS)
CHAT_BROKER_DEAD_AFTER_MS = env_int("CHAT_BROKER_DEAD_AFTER_MS", shared.DEAD_AFTER_MS)
CHAT_RATE_PER_S = float(env("CHAT_RATE_PER_S", shared.RATE_PER_S))
CHAT_RATE_BURST = env_int("CHAT_RATE_BURST", shared.RATE_BURST)
CHAT_ZMQ_HWM = env_int("CHAT_ZMQ_HWM", shared.ZMQ_HWM)
CHAT_MAX_PAYLOAD_BYTES = env_int("CHAT_MAX_PAYLOAD_BYTES", shared.MAX_PAYLOAD_BYTES)
CHAT_MAX_ROOMS_PER_CONNECTION = env_int("CHAT_MAX_ROOMS_PER_CONNECTION", shared.MAX_ROOMS_PER_CONNECTION)
CHAT_EDIT_WINDOW_S = env_int("CHAT_EDIT_WINDOW_S", shared.EDIT_WINDOW_S)
CHAT_MAX_CONNECTIONS = env_int("CHAT_MAX_CONNECTIONS", shared.MAX_CONNECTIONS)
CHAT_MAX_SEND_QUEUE = env_int("CHAT_MAX_SEND_QUEUE", shared.MAX_SEND_QUEUE)
CHAT_PING_INTERVAL_S = env_int("CHAT_PING_INTERVAL_S", shared.PING_INTERVAL_S)
CHAT_PING_TIMEOUT_S = env_int("CHAT_PING_TIMEOUT_S", shared.PING_TIMEOUT_S)
# CURVE to the broker: the broker's public key and this node's own key pair
# (CHAT_KEYS_DIR/nodes/<CHAT_NODE_NAME>.key_secret), each named by its variable or
# found in CHAT_KEYS_DIR; None (plain sockets) when neither exists, an error when
# only one does.  The broker lets this key speak only for this node's name.
CHAT_KEYS_DIR = env("CHAT_KEYS_DIR", shared.KEYS_DIR)
CHAT_CURVE_KEYS = shared.curve_files({
    name: shared.key_path(name, CHAT_KEYS_DIR, env(shared.KEY_FILES[name][0], ""), CHAT_NODE_NAME)
    for name in ("broker_public", "node_secret")})
# The uid proof key's file (chatstream/uid_proofs.py), read by the node's identities: with
# CURVE the broker registers a connection's uid only with its proof, so a CURVE key alone
# speaks for nobody.  None without CURVE (the broker then checks no names at all).
CHAT_UID_PROOF_KEY_FILE = shared.key_path(
    "uid_proof", CHAT_KEYS_DIR, env(shared.KEY_FILES["uid_proof"][0], ""))[0] if CHAT_CURVE_KEYS else None
# The archiver (manage.py runarchiver, CHAT_NODE_NAME=archiver: its key is that name's)
# subscribes to every room: room for a burst of the whole cluster's traffic while a
# batch is written (a SUB socket drops past it, and the archiver catches up from the
# broker's buffer).
CHAT_ARCHIVER_HWM = env_int("CHAT_ARCHIVER_HWM", 100_000)
# Archived room events older than this many days are removed by the archiver, once a day
# and at its start (archive/retention.py); 0 keeps them forever.
CHAT_RETENTION_DAYS = env_int("CHAT_RETENTION_DAYS", 0)
# Its /metrics (archive/metrics.py: lag in events and seconds); 0 serves none.
CHAT_ARCHIVER_METRICS_HOST = env("CHAT_ARCHIVER_METRICS_HOST", "127.0.0.1")
CHAT_ARCHIVER_METRICS_PORT = env_int("CHAT_ARCHIVER_METRICS_PORT", shared.ARCHIVER_METRICS_PORT)
CHAT_NODE_MAX_FRAME_BYTES = env_int("CHAT_NODE_MAX_FRAME_BYTES", shared.node_max_frame_bytes(
    CHAT_HISTORY_SIZE, CHAT_MAX_PAYLOAD_BYTES))
# The edge (docs/OPERATIONS.md "The edge"): browser origins allowed on /socket.io/, the proxies
# whose X-Forwarded-* count, half-open sessions, request rates beside `message`.
CHAT_BALANCER_PORT = env_int("CHAT_BALANCER_PORT", shared.BALANCER_PORT)
CHAT_BALANCER_TLS_PORT = env_int("CHAT_BALANCER_TLS_PORT", shared.BALANCER_TLS_PORT)
CHAT_ALLOWED_ORIGINS = [o.strip() for o in env("CHAT_ALLOWED_ORIGINS", ",".join(shared.own_origins(
    CHAT_BALANCER_PORT, CHAT_BALANCER_TLS_PORT))).split(",") if o.strip()]
CHAT_TRUSTED_PROXIES = [p for p in env("CHAT_TRUSTED_PROXIES", ",".join(shared.TRUSTED_PROXIES)).split(",") if p]
CHAT_HALF_OPEN_TIMEOUT_S = float(env("CHAT_HALF_OPEN_TIMEOUT_S", shared.HALF_OPEN_TIMEOUT_S))
CHAT_REQUEST_RATES = shared.request_rates(env("CHAT_REQUEST_RATES", ""))
# Private rooms (rooms/directory.py, rooms/access.py; the reasons in chatstream/config.py).
CHAT_PRIVATE_ROOM_MAX_MEMBERS = env_int("CHAT_PRIVATE_ROOM_MAX_MEMBERS", shared.PRIVATE_ROOM_MAX_MEMBERS)
CHAT_PRIVATE_ROOMS_PER_ACCOUNT = env_int("CHAT_PRIVATE_ROOMS_PER_ACCOUNT", shared.PRIVATE_ROOMS_PER_ACCOUNT)
CHAT_ACCESS_CACHE_S = float(env("CHAT_ACCESS_CACHE_S", shared.ACCESS_CACHE_S))
# Moderation (chat/protocol/moderation.py): a report's reason in characters, a ban's minutes.
CHAT_REPORT_REASON_MAX = env_int("CHAT_REPORT_REASON_MAX", shared.REPORT_REASON_MAX)
CHAT_BAN_MAX_MINUTES = env_int("CHAT_BAN_MAX_MINUTES", shared.BAN_MINUTES_MAX)
CHAT_HANDSHAKE_RATE = shared.handshake_rate(env("CHAT_HANDSHAKE_RATE", ""))   # (per s, burst) or None
# Per person across connections and nodes (chat/protocol/person_limit.py); unread; typing.
CHAT_PERSON_RATES = shared.person_rates(env("CHAT_PERSON_RATES", ""))
CHAT_ADDRESS_RATE_FACTOR = float(env("CHAT_ADDRESS_RATE_FACTOR", shared.ADDRESS_RATE_FACTOR))
CHAT_USAGE_SHARE_MS = env_int("CHAT_USAGE_SHARE_MS", shared.USAGE_SHARE_MS)
CHAT_UNREAD_MAX = env_int("CHAT_UNREAD_MAX", shared.UNREAD_MAX)
CHAT_UNREAD_ROOMS_MAX = env_int("CHAT_UNREAD_ROOMS_MAX", shared.UNREAD_ROOMS_MAX)
CHAT_READ_FLUSH_MS = env_int("CHAT_READ_FLUSH_MS", shared.READ_FLUSH_MS)
CHAT_TYPING_INTERVAL_MS = env_int("CHAT_TYPING_INTERVAL_MS", shared.TYPING_INTERVAL_MS)
# Operations: what /ops/ scrapes ("name=url,..."), how long a scrape may take, its cache.
CHAT_OPS_TARGETS = shared.ops_targets(env("CHAT_OPS_TARGETS", shared.default_ops_targets()))
# The nodes scripts/node found in the balancer; a hand-set CHAT_OPS_TARGETS alone names
# a cluster of its own (the default file is the scripts/run cluster's).
CHAT_OPS_TARGETS_FILE = shared.ops_targets_file(os.environ, BASE_DIR.parent)
CHAT_OPS_SCRAPE_TIMEOUT_S = float(env("CHAT_OPS_SCRAPE_TIMEOUT_S", shared.OPS_SCRAPE_TIMEOUT_S))
CHAT_OPS_CACHE_S = float(env("CHAT_OPS_CACHE_S", shared.OPS_CACHE_S))
# scripts/node drain's plan for this node (operations/drain.py), read at its SIGUSR1.
CHAT_DRAIN_PLAN = shared.drain_plan(BASE_DIR.parent / env("CHAT_DRAIN_DIR", shared.DRAIN_DIR),
                                    CHAT_NODE_NAME)
CHAT_LOG_FORMAT = env("CHAT_LOG_FORMAT", shared.LOG_FORMAT)   # "plain" or "json"
# Middle-generation collections between two full ones (chat/operations/gcwatch.py: why so many).
CHAT_GC_FULL_AFTER = env_int("CHAT_GC_FULL_AFTER", 1000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s " + CHAT_NODE_NAME + " %(name)s: %(message)s"},
                   "json": {"()": "chatstream.jsonlog.JsonFormatter", "process": CHAT_NODE_NAME,
                            "node": CHAT_NODE_NAME}},
    "filters": {"skip_healthz_503": {"()": "chat.operations.logfilters.SkipHealthz503"},
                "demote_closed_session": {"()": "chat.operations.logfilters.DemoteClosedSession"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": "json" if CHAT_LOG_FORMAT == "json" else "plain",
                             "filters": ["skip_healthz_503", "demote_closed_session"]}},
    "root": {"handlers": ["console"], "level": env("CHAT_LOG_LEVEL", shared.LOG_LEVEL)},
    "loggers": {
        "socketio": {"level": "WARNING"},
        "engineio": {"level": "WARNING"},
        "geventwebsocket": {"level": "WARNING"},
    },
}
