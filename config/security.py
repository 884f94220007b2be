"""Security settings: Content-Security-Policy, HTTPS/HSTS in production, rate and size limits, and
the audit hooks. Imported by `config.settings` as its last line (`from config.security import *`),
so it reads what settings already decided and adds to it; everything still comes from the
environment (docs/security.md lists the variables).
"""

from __future__ import annotations

from csp.constants import NONE, SELF, WASM_UNSAFE_EVAL

from config import settings as _base_module
from config.env import env_bool as _env_bool
from config.env import env_int as _env_int
from config.env import env_str as _env_str

# Read through getattr: this module runs while config.settings is still being imported.
_SECURE: bool = bool(getattr(_base_module, "SECURE_COOKIES", False))
_REDIS_ROOT: str = str(getattr(_base_module, "_redis_root", "") or "")
_BASE_MIDDLEWARE: list[str] = list(getattr(_base_module, "MIDDLEWARE", []))
_BASE_CACHES: dict[str, dict[str, str]] = dict(getattr(_base_module, "CACHES", {}) or {})

# --- Audit hooks (audit knows no other app: who may review where, and what a patient is) --------
AUDIT_SCOPE_RESOLVER = "clinical.scoping.facility_ids_for"
AUDIT_REVIEW_PERMISSION = "review_audit"
AUDIT_PATIENT_MODEL = "clinical.Patient"  # looked up by `mrn` within `facility_id`s
AUDIT_EXPORT_MAX_ROWS = _env_int("AUDIT_EXPORT_MAX_ROWS", 100_000)
AUDIT_SOURCE_SITE = _env_str("AUDIT_SOURCE_SITE", "medlmm-cds")
# IHE ATNA forwarding: udp://host:514 or tcp://host:6514; empty = off.
AUDIT_SYSLOG_URL = _env_str("AUDIT_SYSLOG_URL", "")
AUDIT_SYSLOG_HOSTNAME = _env_str("AUDIT_SYSLOG_HOSTNAME", "") or None
AUDIT_SYSLOG_SD_ID = _env_str("AUDIT_SYSLOG_SD_ID", "medlmm@32473")

# --- Content-Security-Policy (django-csp 4) -----------------------------------------------------
# No inline script and no inline style: every script and stylesheet is a file under /static/.
# 'wasm-unsafe-eval' lets the DICOM viewer compile its WebAssembly codecs (it evaluates no JS).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, WASM_UNSAFE_EVAL],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],  # includes same-origin ws:/wss: (CSP Level 3)
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if _env_str("CSP_REPORT_URI", ""):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [_env_str("CSP_REPORT_URI", "")]

# --- HTTPS in production (DJANGO_SECURE_COOKIES=1 means "served over HTTPS") -------------------
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", _SECURE)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the load balancer probes over plain HTTP
SECURE_HSTS_SECONDS = _env_int("DJANGO_HSTS_SECONDS", 31_536_000 if _SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", _SECURE)
SECURE_HSTS_PRELOAD = _env_bool("DJANGO_HSTS_PRELOAD", _SECURE)
if _env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    # Only behind a proxy that sets X-Forwarded-Proto itself and strips it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_NAME = "__Host-sessionid" if _SECURE else "sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken" if _SECURE else "csrftoken"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# --- Request size limits --------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = _env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)  # forms, JSON
FILE_UPLOAD_MAX_MEMORY_SIZE = _env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)  # above: temp file
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
MAX_UPLOAD_BYTES = _env_int("MAX_UPLOAD_BYTES", 64 * 1024 * 1024)  # multipart uploads (imports, DICOM files)
DICOMWEB_MAX_REQUEST_BYTES = _env_int("DICOMWEB_MAX_REQUEST_BYTES", 2 * 1024 * 1024 * 1024)  # STOW-RS streams

# --- Rate limits (config.ratelimit; axes lockout stays as it is) -----------------------------------
RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
RATELIMIT_CACHE = "ratelimit"
RATELIMIT_RULES = [
    {"name": "login", "path_prefix": "/accounts/login/", "methods": ["POST"],
     "limit": _env_int("RATELIMIT_LOGIN_PER_MINUTE", 30), "window_s": 60, "by": "ip"},
    {"name": "2fa", "path_prefix": "/accounts/2fa/", "methods": ["POST"],
     "limit": _env_int("RATELIMIT_2FA_PER_MINUTE", 10), "window_s": 60, "by": "user_or_ip"},
    {"name": "password", "path_prefix": "/accounts/password_change/", "methods": ["POST"],
     "limit": 10, "window_s": 60, "by": "user_or_ip"},
    {"name": "api", "path_prefix": "/api/", "methods": [],
     "limit": _env_int("RATELIMIT_API_PER_MINUTE", 600), "window_s": 60, "by": "user_or_ip"},
]
_caches = dict(_BASE_CACHES)
_caches.setdefault("default", {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})
if _REDIS_ROOT:
    # One count for all worker processes; its own Redis database after broker/results/channels.
    _caches["ratelimit"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"{_REDIS_ROOT}/{_env_int('REDIS_DB_BASE', 0) + 3}",
        "KEY_PREFIX": "medlmm",
    }
else:
    _caches["ratelimit"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
CACHES = _caches

_middleware = list(_BASE_MIDDLEWARE)
# Size first (before anything reads the body), CSP on every response, rate limits once the user
# and the audit context are known.
_middleware.insert(_middleware.index("django.middleware.security.SecurityMiddleware") + 1,
                   "config.ratelimit.RequestSizeLimitMiddleware")
_middleware.insert(_middleware.index("config.ratelimit.RequestSizeLimitMiddleware") + 1,
                   "csp.middleware.CSPMiddleware")
_middleware.insert(_middleware.index("audit.middleware.RequestContextMiddleware") + 1,
                   "config.ratelimit.RateLimitMiddleware")
MIDDLEWARE = _middleware

__all__ = [name for name in dir() if name.isupper() and not name.startswith("_")]
