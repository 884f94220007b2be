from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from clinical.auth.views import LoginView
from config.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/", include("clinical.auth.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    path("api/", include("clinical.api.urls")),
    path("", include("clinical.dicom.urls")),
    path("audit/", include("audit.urls")),
    path("inference/", include("inference.urls")),
    path("reports/quality/", include("reports.dashboard.urls")),  # the AI quality dashboard (admins)
    path("reports/", include("reports.urls")),  # worklist, review, sign-off (HTML and API)
    path("reports/", include("reports.output_urls")),  # letters, FHIR, batch printing
    path("admin/", admin.site.urls),
    path("", include("clinical.urls")),
]
