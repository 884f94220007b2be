"""Patient API: one endpoint per operation, explicit input/output serializers (house rule 6)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical import selectors, services
from clinical.models import Facility, Patient, Sex
from clinical.scoping import facility_ids_for, get_scoped_or_404, role_at


class PatientOut(serializers.ModelSerializer[Patient]):
    facility: serializers.SlugRelatedField[Facility] = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Patient
        fields = ["id", "facility", "mrn", "family_name", "given_name", "family_name_kana", "given_name_kana",
                  "sex", "birth_date"]
        read_only_fields = fields


class PatientIn(serializers.Serializer[Any]):
    facility = serializers.CharField(help_text="施設コード")
    mrn = serializers.CharField(max_length=40)
    family_name = serializers.CharField(max_length=50)
    given_name = serializers.CharField(max_length=50)
    family_name_kana = serializers.CharField(max_length=50)
    given_name_kana = serializers.CharField(max_length=50)
    sex = serializers.ChoiceField(choices=Sex.choices)
    birth_date = serializers.DateField()


class PatientPatch(serializers.Serializer[Any]):
    family_name = serializers.CharField(max_length=50, required=False)
    given_name = serializers.CharField(max_length=50, required=False)
    family_name_kana = serializers.CharField(max_length=50, required=False)
    given_name_kana = serializers.CharField(max_length=50, required=False)
    sex = serializers.ChoiceField(choices=Sex.choices, required=False)
    birth_date = serializers.DateField(required=False)


def _django_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(getattr(exc, "message_dict", {"non_field_errors": [str(exc)]}))


class PatientListCreate(generics.ListCreateAPIView[Patient]):
    serializer_class = PatientOut

    def get_queryset(self) -> QuerySet[Patient]:
        return selectors.patient_list(user=self.request.user, query=self.request.query_params.get("q", ""))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        audit_record(kind=EventKind.PHI_SEARCH, object_type="clinical.patient",
                     details={"q": request.query_params.get("q", ""), "results": response.data.get("count")})
        return response

    @extend_schema(request=PatientIn, responses={201: PatientOut})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = PatientIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        code = fields.pop("facility")
        facility = Facility.objects.filter(code=code, id__in=facility_ids_for(request.user)).first()
        if facility is None:
            # Unknown and not-yours look the same to the caller; the audit trail tells them apart.
            audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="clinical.facility",
                         object_id=str(code)[:64], details={"operation": "patient_create",
                                                            "exists": Facility.objects.filter(code=code).exists()})
            raise ValidationError({"facility": [f"施設コード「{code}」は存在しないか、権限がありません。"]})
        if facility.pk not in facility_ids_for(request.user, "manage_patients"):
            raise PermissionDenied("この施設の受診者を登録する権限がありません。")
        try:
            patient = services.patient_create(facility=facility, actor=request.user, **fields)  # type: ignore[arg-type]
        except DjangoValidationError as exc:  # model invariants (unique MRN per facility, …)
            raise _django_errors(exc) from exc
        return Response(PatientOut(patient).data, status=status.HTTP_201_CREATED)


class PatientDetail(generics.RetrieveUpdateAPIView[Patient]):
    serializer_class = PatientOut
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self) -> Patient:
        return get_scoped_or_404(Patient.objects.select_related("facility"), self.request.user, pk=self.kwargs["pk"])

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        patient = self.get_object()
        audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, patient.facility_id),
                     facility_id=patient.facility_id, object_type="clinical.patient", object_id=patient.pk,
                     patient_id=patient.pk)
        return Response(PatientOut(patient).data)

    @extend_schema(request=PatientPatch, responses={200: PatientOut})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        patient = self.get_object()
        if patient.facility_id not in facility_ids_for(request.user, "manage_patients"):
            raise PermissionDenied("この施設の受診者を更新する権限がありません。")
        data = PatientPatch(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            patient = services.patient_update(patient=patient, actor=request.user, **data.validated_data)  # type: ignore[arg-type]
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc
        return Response(PatientOut(patient).data)
