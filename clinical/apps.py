from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "clinical"
    verbose_name = "臨床データ"

    def ready(self) -> None:
        from clinical.administration import nav

        nav.install()
