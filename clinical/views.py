"""Thin HTML views: scope, audit the PHI read, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.kinds import EventKind
from audit.services import audit_record
from clinical import selectors
from clinical.models import Patient
from clinical.scoping import get_scoped_or_404, role_at


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "clinical/home.html", {"facilities": selectors.facilities_for(user=request.user)})


@login_required
def patient_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    page = Paginator(selectors.patient_list(user=request.user, query=query), 25).get_page(request.GET.get("page"))
    audit_record(kind=EventKind.PHI_SEARCH, object_type="clinical.patient",
                 details={"q": query, "page": page.number, "results": page.paginator.count})
    return render(request, "clinical/patient_list.html", {"page": page, "query": query})


@login_required
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_scoped_or_404(Patient.objects.select_related("facility"), request.user, pk=pk)
    audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, patient.facility_id),
                 facility_id=patient.facility_id, object_type="clinical.patient", object_id=patient.pk,
                 patient_id=patient.pk)
    return render(request, "clinical/patient_detail.html", {"patient": patient})
