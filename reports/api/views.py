"""Reports API: read a report, save a revision, sign, amend. One endpoint per operation; each calls
its service and maps the service's refusal to a status: 403 a physician-only action by someone of
the facility who is not its physician, 404 a report outside the user's facilities (audited),
409 a lost update prevented or a report already signed, 400 anything else the service refused
(wrong re-authentication, unconfirmed numbers, an empty text)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.scoping import role_at
from reports import presenting, selectors, services
from reports.api import shapes
from reports.api.serializers import (
    AmendIn,
    ConflictOut,
    ErrorOut,
    ReportOut,
    RevisionIn,
    SavedOut,
    SignIn,
    SignOffOut,
)
from reports.grounding import sources_now
from reports.models import Report
from reports.quality import model_draft_of

REFUSALS = {403: ErrorOut, 400: ErrorOut, 409: ConflictOut}


def _refused(exc: services.ReportRefused, report: Report) -> Response:
    if isinstance(exc, services.RevisionConflict):
        return Response(ConflictOut(shapes.conflict(exc)).data, status=status.HTTP_409_CONFLICT)
    code: int
    if isinstance(exc, services.NotPermitted):
        code = status.HTTP_403_FORBIDDEN
    elif isinstance(exc, services.ReportLocked):
        code = status.HTTP_409_CONFLICT
    else:
        code = status.HTTP_400_BAD_REQUEST
    sources = sources_now(report, selectors.head_revision(report)) if getattr(exc, "unconfirmed", None) else None
    return Response(ErrorOut(shapes.refusal(exc, sources)).data, status=code)


class ReportDetail(APIView):
    @extend_schema(summary="所見（最新版・数値照合・状態）", responses={200: ReportOut})
    def get(self, request: Request, pk: int) -> Response:
        report = selectors.report_for_reading(request.user, pk)
        audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, report.facility_id),
                     facility_id=report.facility_id, object_type="reports.report", object_id=report.pk,
                     patient_id=report.patient_id, details={"view": "api"})
        return Response(ReportOut(shapes.report(report, request.user)).data)


class RevisionCreate(APIView):
    @extend_schema(summary="版を保存（自動保存を含む）", request=RevisionIn,
                   responses={201: SavedOut, 200: SavedOut, **REFUSALS},
                   description=("base_number は画面が表示していた版。先に他の版が保存されていれば"
                                " 409 で両方の本文を返し、何も書き込みません。"
                                "本文が変わらなければ 200（新しい版は作られません）。"))
    def post(self, request: Request, pk: int) -> Response:
        report = selectors.report_for(request.user, pk)
        data = RevisionIn(data=request.data)
        data.is_valid(raise_exception=True)
        base = data.validated_data["base_number"]
        try:
            revision = services.revision_save(report=report, actor=request.user,  # type: ignore[arg-type]
                                              text=data.validated_data["text"], base_number=base,
                                              autosave=data.validated_data["autosave"])
        except services.ReportRefused as exc:
            return _refused(exc, report)
        created = revision.number != base
        report.refresh_from_db(fields=["status"])
        body = {"report_status": report.status, "report_status_label": report.get_status_display(),
                "created": created, "revision": shapes.revision(revision),
                "changes": presenting.sentence_changes(model_draft_of(revision), revision)}
        return Response(SavedOut(body).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ReportSign(APIView):
    @extend_schema(summary="署名（再認証）", request=SignIn, responses={200: SignOffOut, **REFUSALS},
                   description="再認証（パスワードまたはワンタイムパスワード）のうえ、表示していた版に署名します。"
                               "原データと一致しない数値は、修正するか confirmed に key を入れて確認済みにします。")
    def post(self, request: Request, pk: int) -> Response:
        report = selectors.report_for(request.user, pk)
        data = SignIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            signoff = services.report_sign(report=report, actor=request.user,  # type: ignore[arg-type]
                                           revision_number=v["revision_number"], method=v["method"],
                                           credential=v["credential"], confirmed=v["confirmed"])
        except services.ReportRefused as exc:
            return _refused(exc, report)
        return Response(SignOffOut(shapes.signoff(signoff)).data)


class ReportAmend(APIView):
    @extend_schema(summary="署名後の修正（理由・再認証）", request=AmendIn, responses={200: SignOffOut, **REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        report = selectors.report_for(request.user, pk)
        data = AmendIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            signoff = services.report_amend(report=report, actor=request.user,  # type: ignore[arg-type]
                                            text=v["text"], reason=v["reason"], method=v["method"],
                                            credential=v["credential"], confirmed=v["confirmed"])
        except services.ReportRefused as exc:
            return _refused(exc, report)
        return Response(SignOffOut(shapes.signoff(signoff)).data)
