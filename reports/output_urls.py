from django.urls import path

from reports import output_views as views

urlpatterns = [
    path("<int:pk>/letter.pdf", views.letter_pdf_view, name="report_letter_pdf"),
    path("<int:pk>/fhir.json", views.fhir_view, name="report_fhir"),
    path("print/", views.print_start, name="report_print_start"),
    path("print/<int:pk>/", views.print_detail, name="report_print_detail"),
    path("print/<int:pk>/download", views.print_download, name="report_print_download"),
]
