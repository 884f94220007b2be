"""Production settings plus PostgreSQL connection pooling (Django ≥ 5.1, psycopg-pool), for the
benchmark's "with pooling" run. Under ASGI every request runs in a fresh thread and so opens a
fresh database connection (CONN_MAX_AGE cannot help); a pool removes that per-request cost."""

from config.settings import *  # noqa: F403
from config.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 0  # required with "pool"
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 8}
