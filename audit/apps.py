from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "監査ログ"

    def ready(self) -> None:
        from audit import (
            receivers,  # noqa: F401  (connects login/logout/lockout receivers)
            syslog,
        )

        syslog.connect()  # forwards committed events to AUDIT_SYSLOG_HOST when one is configured
