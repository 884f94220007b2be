"""The one settings module. Everything that differs between the embedded demo, tests and
production comes from the environment (see docs/configuration.md); defaults are the safe,
service-free embedded mode."""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MEDLMM_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
# PHI reads' audit events commit without a WAL flush (audit/services.py); 0 makes them synchronous.
AUDIT_READ_ASYNC = env_bool("AUDIT_READ_ASYNC", True)
# "embedded": one process, SQLite, Celery and Channels in memory. "production": PostgreSQL + Redis.
DATABASE_URL = env_str("DATABASE_URL", "")
REDIS_URL = env_str("REDIS_URL", "")
EMBEDDED = not REDIS_URL


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY", "")
    if key:
        return key
    # Embedded mode: a random key kept under var/ so sessions survive restarts; never in git.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "channels",
    # Our apps, in dependency order: audit ← clinical ← inference ← reports.
    "audit",
    "clinical",
    "clinical.dicom",
    "inference",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "audit.middleware.RequestContextMiddleware",
    "clinical.auth.session_timeout.SessionTimeoutMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "clinical.auth.otp_required.RequireSecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

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
                "django.template.context_processors.i18n",
                "clinical.context_processors.memberships",
                "audit.context_processors.audit_review",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------
if DATABASE_URL:
    # Persistent connections in production; the test suite sets DB_CONN_MAX_AGE=0 so that threads
    # (a Celery worker thread, Channels' sync executor) do not keep connections to the test database.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
                                                  conn_health_checks=True)}
    # Under ASGI each request of a sync view runs in a fresh thread, so CONN_MAX_AGE cannot keep a
    # connection and every request would open one (≈ 4 ms, more under load; QIDO-RS p95 was 1.7×
    # Orthanc's without a pool, 0.9× with it: bench/dicom_bench.py). Django's psycopg pool keeps
    # them. DB_POOL_MAX_SIZE=0 turns it off; so does DB_CONN_MAX_AGE=0 (the test suite's setting:
    # no connection may outlive its thread there).
    DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 8 if DATABASES["default"]["CONN_MAX_AGE"] else 0)
    if DB_POOL_MAX_SIZE > 0 and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # required with "pool"
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DB_POOL_MAX_SIZE), "max_size": DB_POOL_MAX_SIZE,
            "timeout": env_int("DB_POOL_TIMEOUT_S", 10)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "medlmm.sqlite3"),
            # A file DB in WAL mode with IMMEDIATE transactions: the in-process Celery worker
            # thread and the web server write concurrently without "database is locked".
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Identities, login, second factor -------------------------------------------------------
AUTH_USER_MODEL = "clinical.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out users before checking passwords
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # MHLW 安全管理ガイドライン 第6.0版: long passwords, or shorter only with a second factor.
    {
        "NAME": "clinical.auth.passwords.MedicalPasswordValidator",
        "OPTIONS": {"min_length": 12, "min_length_with_second_factor": 8},
    },
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

# Lockout (django-axes): per username+IP so one attacker cannot lock everyone out from one address.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME: float = env_int("AXES_COOLOFF_MINUTES", 30) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLED = env_bool("AXES_ENABLED", True)

OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Med-LMM CDS")
# Roles whose members must pass TOTP before they see anything (issue: physicians and administrators).
SECOND_FACTOR_REQUIRED_ROLES = env_list("SECOND_FACTOR_REQUIRED_ROLES", ["physician", "admin"])

# Sessions: an idle timeout and an absolute lifetime (MHLW guideline: no long idle sessions).
SESSION_IDLE_TIMEOUT_S = env_int("SESSION_IDLE_TIMEOUT_S", 15 * 60)
SESSION_ABSOLUTE_TIMEOUT_S = env_int("SESSION_ABSOLUTE_TIMEOUT_S", 10 * 60 * 60)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT_S
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_COOKIES = env_bool("DJANGO_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
CSRF_FAILURE_VIEW = "audit.views.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- I18N: Japanese first ----------------------------------------------------------------------
LANGUAGE_CODE = "ja"
# Each language is named in itself, as language pickers conventionally do.
LANGUAGES = [("ja", "日本語"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Tokyo"
USE_I18N = True
USE_TZ = True  # stored in UTC; audit timestamps are UTC

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "clinical.auth.otp_required.SecondFactorVerified",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "clinical.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Med-LMM CDS API",
    "DESCRIPTION": "健診・人間ドック向け臨床意思決定支援 API",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Celery and Channels ------------------------------------------------------------------------
if REDIS_URL:
    # Broker, results and channel layer on three consecutive Redis databases from REDIS_DB_BASE,
    # so the test suite (base 10) never meets a running server's queues (base 0).
    _redis_root = REDIS_URL.rstrip("/")
    if _redis_root.count("/") > 2:
        _redis_root = _redis_root.rsplit("/", 1)[0]
    _db = env_int("REDIS_DB_BASE", 0)
    CELERY_BROKER_URL = f"{_redis_root}/{_db}"
    CELERY_RESULT_BACKEND = f"{_redis_root}/{_db + 1}"
    # All websocket consumers of one ASGI process share one Redis list for what is sent to them:
    # with channels_redis' default capacity (100) a process with 1,000 subscribers drops group
    # messages as soon as it lags; and redis-py's pool refused connections beyond 100 when many
    # subscribers left at once (bench/ws_fanout.py).
    # redis-py 8 reads with a 5 s socket timeout by default, exactly channels_redis' 5 s blocking pop
    # of a consumer's channel: a websocket with nothing to receive for 5 s (a job waiting for the
    # GPU) died with "Timeout reading from redis". Reads get more than the pop's 5 s.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "config.channel_layer.RedisChannelLayer",  # two round trips per group send
                    "CONFIG": {"hosts": [{"address": f"{_redis_root}/{_db + 2}",
                                          "max_connections": env_int("CHANNELS_REDIS_MAX_CONNECTIONS", 1000),
                                          "socket_timeout": 30}],
                               "capacity": env_int("CHANNELS_CAPACITY", 5000)}}
    }
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, float] = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 3600)
    }
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # The memory transport polls once a second by default; 50 ms keeps embedded latency low.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05}

# --- Inference --------------------------------------------------------------------------------------
# A local model ("transformers") runs in a child process of the GPU worker, not among its job
# threads (ml/engines/process_engine.py says why). The test suite turns it off where it builds
# engines in its own process; the worker tests turn it on again.
INFERENCE_ENGINE_PROCESS = env_bool("INFERENCE_ENGINE_PROCESS", True)
# CPUs of that child process ("0-3"; empty: the worker's own): keeps the thread that feeds the GPU
# off the cores of the job threads and web processes (ml/engines/cpus.py).
INFERENCE_ENGINE_CPUS = env_str("INFERENCE_ENGINE_CPUS", "")

# --- Logging: no PHI in logs; request ids only -----------------------------------------------------
LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

MEDLMM_DEMO = env_bool("MEDLMM_DEMO", False)

from config.security import *  # noqa
