from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "所見・報告書"

    def ready(self) -> None:
        from clinical.signals import visits_corrected
        from inference.signals import draft_ready
        from reports import output_hooks, ui_hooks
        from reports.receivers import on_draft_ready, on_visits_corrected

        ui_hooks.install()
        output_hooks.install()
        draft_ready.connect(on_draft_ready, dispatch_uid="reports.on_draft_ready")
        visits_corrected.connect(on_visits_corrected, dispatch_uid="reports.on_visits_corrected")

        from reports.dashboard import hooks as dashboard_hooks

        dashboard_hooks.install()
