"""Django settings for ibdata, read from the environment (and `.env`, never exported).

Reading them writes nothing: the secret key is the one `manage.py init_secrets` kept, folders are
made by whatever needs them (the SQLite backend, the log file, collectstatic). The deployment's
own knobs (web port, Flower) are in ibdata_project/deploy.py; the tests' in settings_test.py.
"""

from email.utils import getaddresses
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from fetcher.domain.gateways import gateways_parse
from fetcher.ibkr.types import CLIENT_LIBRARIES
from fetcher.queues import TASK_ROUTES, TaskName
from fetcher.timings import (
    BROKER_VISIBILITY_TIMEOUT_S,
    HEARTBEAT_S,
    RECOVER_EVERY_S,
    STALE_AFTER_S,
)
from ibdata_project.environment import BASE_DIR, DATA_DIR, LOG_DIR, env  # noqa: F401 (BASE_DIR)
from ibdata_project.installation import SECRET_KEY_FILE, kept_read

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _secret_key() -> str:
    """DJANGO_SECRET_KEY; unset, the key `manage.py init_secrets` kept under DATA_DIR (owner-only),
    which is only allowed while the admin is served on loopback alone. Neither: empty, and the
    web server refuses to start (ibdata_project/wsgi.py) while commands that sign nothing run."""
    key = env("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    public = sorted(set(ALLOWED_HOSTS) - LOOPBACK_HOSTS)
    if public:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY must be set when the admin is served beyond loopback "
            f"(DJANGO_ALLOWED_HOSTS names {', '.join(public)})"
        )
    return kept_read(SECRET_KEY_FILE) or ""


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "fetcher.sites.IbdataAdminConfig",  # django.contrib.admin with the Bars list
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "fetcher",
    "backtests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # static files from STATIC_ROOT (collectstatic) under gunicorn, with no web server in front
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ibdata_project.urls"
WSGI_APPLICATION = "ibdata_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# What DATABASE_URL may name: PostgreSQL (the deployed shape) or SQLite (the embedded default).
DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "sqlite"}


def _database_url() -> str:
    """DATABASE_URL; unset (or empty), the embedded default: a SQLite file under DATA_DIR. One
    the project cannot use, in one line."""
    url = env("DATABASE_URL", default="")
    if not url:
        return f"sqlite:///{DATA_DIR / 'ibdata.sqlite3'}"
    scheme = urlsplit(url).scheme
    if scheme not in DATABASE_SCHEMES:  # the URL itself is not shown: it may hold a password
        raise ImproperlyConfigured(
            f"DATABASE_URL ({scheme or 'no scheme'}) is not a PostgreSQL or SQLite URL: "
            "postgres://user@host:5432/name, or sqlite:////absolute/path.sqlite3"
        )
    return url


DATABASES = {"default": env.db_url_config(_database_url())}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's, making the file's folder at the first connection; WAL lets the command follow a
    # run's progress while the run writes.
    DATABASES["default"]["ENGINE"] = "ibdata_project.embedded_sqlite3"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _catalog_url() -> str:
    """DATA_CATALOG_URL: where the Parquet catalog is, s3://bucket/prefix (object storage, with
    the standard AWS_* variables) or a folder; empty, DATA_DIR/catalog. A catalog on object
    storage may be written from several hosts: PostgreSQL's locks keep them apart."""
    url = env("DATA_CATALOG_URL", default="").strip()
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ImproperlyConfigured(
                f"DATA_CATALOG_URL={url!r} names no bucket: s3://bucket/prefix"
            )
        if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
            raise ImproperlyConfigured(
                f"DATA_CATALOG_URL={url!r} needs PostgreSQL (DATABASE_URL): its locks keep the "
                "catalog's writers on several hosts apart"
            )
    elif parts.scheme:
        raise ImproperlyConfigured(
            f"DATA_CATALOG_URL={url!r}: use s3://bucket/prefix or a folder (unset: DATA_DIR/catalog)"
        )
    return url


DATA_CATALOG_URL = _catalog_url()
# A catalog on S3 or an S3-compatible store (MinIO, R2, ...): the standard AWS variables, read
# here so that .env holds them too; unset, AWS's own defaults (~/.aws, the instance's role).
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL", default="")
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default="")
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default="")
AWS_DEFAULT_REGION = env("AWS_DEFAULT_REGION", default="")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# the admin writes times as 2024-03-28 14:30 UTC: every time on a page says its zone
FORMAT_MODULE_PATH = ["ibdata_project.formats"]
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # made and filled by collectstatic (make up and compose run it)
# whitenoise serves the apps' static files itself, collected or not, under runserver too
# (make admin) with DEBUG off.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Celery -------------------------------------------------------------------------
# Unset REDIS_URL / CELERY_BROKER_URL means the embedded default: tasks run in-process.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL and (_redis := urlsplit(REDIS_URL).scheme) not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured(
        f"REDIS_URL ({_redis or 'no scheme'}) is not a Redis URL: redis://host:6379/0 "
        "(rediss:// with TLS)"
    )
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = TASK_ROUTES
# Processes of a default/backtests worker (the ibkr worker is always one: --concurrency 1).
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2, low=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # the ibkr worker takes one run at a time
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A fetch task may run for hours: Redis must not hand its message to another worker meanwhile.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT_S}
# A running run whose heartbeat (every HEARTBEAT_S) has been silent this long has lost its
# worker: it is resumed, by an ibkr worker when it starts, by beat, or with several gateways by
# another gateway's worker, which look for such runs every FETCH_RECOVER_EVERY_S.
FETCH_STALE_AFTER_S = env.float("FETCH_STALE_AFTER_S", default=STALE_AFTER_S)
if FETCH_STALE_AFTER_S < 3 * HEARTBEAT_S:
    raise ImproperlyConfigured(
        f"FETCH_STALE_AFTER_S={FETCH_STALE_AFTER_S:g} is too short: a running run beats every "
        f"{HEARTBEAT_S:g} s, so at least {3 * HEARTBEAT_S:g}"
    )
FETCH_RECOVER_EVERY_S = min(RECOVER_EVERY_S, FETCH_STALE_AFTER_S)
CELERY_BEAT_SCHEDULE = {
    "resume-orphaned-fetch-runs": {
        "task": TaskName.FETCH_RUNS_RECOVER,
        "schedule": FETCH_RECOVER_EVERY_S,
    },
}

# --- Interactive Brokers -------------------------------------------------------------
# IBKR_HOST=sim starts the built-in gateway simulator in-process instead of connecting out.
IBKR_HOST = env("IBKR_HOST", default="127.0.0.1")
IBKR_PORT = env.int("IBKR_PORT", default=7497, low=1, high=65535)
IBKR_CLIENT_ID = env.int("IBKR_CLIENT_ID", default=10, low=0)


def _gateways() -> tuple:
    """IBKR_GATEWAYS ("name=host:port:clientid,..."): several IBKR logins, each with its own
    ibkr worker (queue ibkr.<name>) and pacing budget, sharing every run's requests; unset
    (empty here), the one gateway of IBKR_HOST / IBKR_PORT / IBKR_CLIENT_ID (fetcher/ibkr/specs.py).
    A bad entry, in one line."""
    try:
        gateways = gateways_parse(env("IBKR_GATEWAYS", default=""))
    except ValueError as exc:
        raise ImproperlyConfigured(f"IBKR_GATEWAYS: {exc}") from None
    if len(gateways) > 1 and not (REDIS_URL and "postgresql" in DATABASES["default"]["ENGINE"]):
        raise ImproperlyConfigured(
            "IBKR_GATEWAYS: several gateways share runs through PostgreSQL and Redis: "
            "set DATABASE_URL=postgres://... and REDIS_URL"
        )
    return gateways


IBKR_GATEWAYS = _gateways()
IBKR_CONNECT_TIMEOUT = env.float("IBKR_CONNECT_TIMEOUT", default=10.0, above=0)
IBKR_REQUEST_TIMEOUT = env.float("IBKR_REQUEST_TIMEOUT", default=120.0, above=0)
# Only against the simulator: its --time-scale, so the client's pacing windows match.
IBKR_PACING_TIME_SCALE = env.float("IBKR_PACING_TIME_SCALE", default=1.0, above=0)
# Real seconds added to every pacing window: covers the delay between the pacer admitting a
# request and the gateway receiving it (raise it on a loaded machine).
IBKR_PACING_MARGIN_S = env.float("IBKR_PACING_MARGIN_S", default=0.1, low=0)
IBKR_MARKET_DATA_TYPE = env("IBKR_MARKET_DATA_TYPE", default="DELAYED_FROZEN")


def _ibkr_client() -> str:
    """IBKR_CLIENT: the client library the gateway is spoken to through (ib_insync, or ib_async,
    its maintained fork); another name, in one line."""
    name = env("IBKR_CLIENT", default=CLIENT_LIBRARIES[0]).strip()
    if name not in CLIENT_LIBRARIES:
        raise ImproperlyConfigured(
            f"IBKR_CLIENT={name!r} is not a client library: use {' or '.join(CLIENT_LIBRARIES)}"
        )
    return name


IBKR_CLIENT = _ibkr_client()
TRADING_MODE = env("TRADING_MODE", default="paper")
TWS_ACCOUNT = env("TWS_ACCOUNT", default="")
# TWS_USERNAME / TWS_PASSWORD are neither read nor exported from .env (environment.py leaves them
# out): only an IB Gateway container needs them, and docker-compose.yml hands them to it alone.

# --- Alerts (fetcher/services/alerts.py) ------------------------------------------------
# Who is mailed when a scheduled run fails or the gateway stays unreachable: DJANGO_ADMINS is
# "Name <a@example.com>,b@example.com"; empty, the alerts are logged and nobody is mailed.


def _admins(text: str) -> list[tuple[str, str]]:
    """DJANGO_ADMINS as Django's ADMINS: (name, address) pairs; a malformed one, in one line."""
    entries = [entry for entry in text.split(",") if entry.strip()]
    admins = getaddresses(entries)
    for entry, (_, address) in zip(entries, admins, strict=True):
        if address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
            raise ImproperlyConfigured(
                f"DJANGO_ADMINS: {entry.strip()!r} is not an address: use "
                '"Name <a@example.com>,b@example.com"'
            )
    return [(name or address, address) for name, address in admins]


def _email_url() -> dict:
    """EMAIL_URL read by django-environ; an unknown scheme said in one line (not the URL: it
    may hold a password)."""
    try:
        return env.email_url("EMAIL_URL", default="consolemail://")
    except ImproperlyConfigured:
        scheme = env("EMAIL_URL").partition(":")[0]
        raise ImproperlyConfigured(
            f"EMAIL_URL: {scheme!r} is not a mail scheme: use smtp://host:port, "
            "smtp+tls://user:password@host:587, smtp+ssl://... or consolemail://"
        ) from None


ADMINS = _admins(env("DJANGO_ADMINS", default=""))
# How mail leaves: smtp://host:port, smtp+tls://user:password@host:587, smtp+ssl://...:465;
# unset, consolemail:// (each mail is written to the sending process's output and log).
_email = _email_url()
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10  # seconds: an unreachable mail server never holds a worker for long
SERVER_EMAIL = env("SERVER_EMAIL", default="ibdata@localhost")
EMAIL_SUBJECT_PREFIX = "[ibdata] "
# The ibkr worker tells the admins once it has been unable to reach its gateway this long.
IBKR_ALERT_AFTER_S = env.float("IBKR_ALERT_AFTER_S", default=900.0, above=0)

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "level": "WARNING",
        },
        "file": {
            "class": "ibdata_project.logfiles.RotatingLogFile",  # its folder made on first use
            "filename": str(LOG_DIR / "ibdata.log"),
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "encoding": "utf-8",
        },
    },
    "root": {"handlers": ["console", "file"], "level": LOG_LEVEL},
    # ib_insync logs every gateway error itself; the commands say what matters in one line.
    "loggers": {
        client: {"handlers": ["file"], "level": "INFO", "propagate": False}
        for client in CLIENT_LIBRARIES
    },
}
