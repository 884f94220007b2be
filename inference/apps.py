from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "AI推論"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from clinical.models import CheckupVisit
        from inference import receivers, ui_hooks

        ui_hooks.install()
        post_save.connect(receivers.on_visit_saved, sender=CheckupVisit, dispatch_uid="inference.visit_saved")
        try:
            from clinical import signals as clinical_signals
        except ImportError:
            return
        for name, receiver in (("visits_arrived", receivers.on_visits_arrived),
                               ("studies_arrived", receivers.on_studies_arrived)):
            signal = getattr(clinical_signals, name, None)
            if signal is not None:
                signal.connect(receiver, dispatch_uid=f"inference.{name}")
