"""Staff screens for checkups: import with progress, the visit worklist, a visit's judged values,
and trend charts. Thin: scope, audit the PHI read, render."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from audit.kinds import EventKind
from audit.services import audit_record
from clinical import selectors_checkups as sel
from clinical.charts import threshold_lines, trend_svg
from clinical.extensions import visit_actions
from clinical.intake.items import BY_KEY
from clinical.intake.services import ImportRefused, batch_state, import_batch_create
from clinical.judging import age_on
from clinical.models import CheckupVisit, Facility, ImportBatch, MappingProfile
from clinical.paging import CappedPaginator
from clinical.scoping import facility_ids_for, get_scoped_or_404, role_at, scope
from clinical.screening import load_ruleset

OUTCOME_LABELS = {"normal": _("基準内"), "guidance": _("保健指導"), "referral": _("受診勧奨")}
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class ImportForm(forms.Form):
    facility = forms.ModelChoiceField(queryset=Facility.objects.none(), label=_("施設"))
    profile = forms.ModelChoiceField(queryset=MappingProfile.objects.none(), label=_("取込設定（列の対応）"),
                                     required=False, empty_label=_("標準（項目名・JLAC10コード）"))
    file = forms.FileField(label=_("ファイル（CSV / Excel）"))

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        facilities = Facility.objects.filter(id__in=facility_ids_for(user, "import_checkups"))
        field = self.fields["facility"]
        field.queryset = facilities  # type: ignore[attr-defined]
        self.fields["profile"].queryset = MappingProfile.objects.filter(  # type: ignore[attr-defined]
            facility__in=facilities).select_related("facility")
        if len(facilities) == 1:
            field.initial = facilities[0].pk  # one facility: nothing to choose
            field.empty_label = None  # type: ignore[attr-defined]


class WorklistForm(forms.Form):
    date_from = forms.DateField(label=_("受診日（から）"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("受診日（まで）"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))
    follow_up = forms.TypedChoiceField(label=_("受診勧奨"), required=False, coerce=lambda v: v == "1",
                                       empty_value=None,
                                       choices=[("", _("すべて")), ("1", _("あり")), ("0", _("なし"))])
    item = forms.ChoiceField(label=_("項目"), required=False,
                             choices=[("", "—")] + [(k, BY_KEY[k].label) for k in
                                                    ("sbp", "dbp", "tg", "hdl", "ldl", "hba1c", "fbg", "ast", "alt",
                                                     "ggt", "egfr")])
    outcome = forms.ChoiceField(label=_("判定"), required=False,
                                choices=[("", "—"), *OUTCOME_LABELS.items()])
    q = forms.CharField(label=_("受診者番号・カナ"), required=False)


@login_required
def import_upload(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            form.add_error("file", _("ファイルが大きすぎます（50 MB まで）。"))
        else:
            try:
                batch = import_batch_create(facility=form.cleaned_data["facility"], file_name=upload.name,
                                            content=upload, actor=request.user,  # type: ignore[arg-type]
                                            profile=form.cleaned_data["profile"])
                return redirect("import_detail", pk=batch.pk)
            except ImportRefused as exc:
                form.add_error("file", str(exc))
    batches = scope(ImportBatch.objects.select_related("facility"), request.user, perm="import_checkups")[:20]
    return render(request, "clinical/import_upload.html", {"form": form, "batches": batches})


@login_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_scoped_or_404(ImportBatch.objects.select_related("facility"), request.user, perm="import_checkups",
                              pk=pk)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(batch_state(batch))  # polling fallback when websockets are blocked
    return render(request, "clinical/import_detail.html", {"batch": batch, "state": batch_state(batch)})


@login_required
def visit_worklist(request: HttpRequest) -> HttpResponse:
    form = WorklistForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    filters = sel.VisitFilters(date_from=data.get("date_from"), date_to=data.get("date_to"),
                               follow_up=data.get("follow_up"), item=data.get("item") or "",
                               outcome=data.get("outcome") or "", query=(data.get("q") or "").strip())
    page = CappedPaginator(sel.visit_worklist(user=request.user, filters=filters), 50).get_page(request.GET.get("page"))
    audit_record(kind=EventKind.PHI_SEARCH, object_type="clinical.checkupvisit",
                 details={"filters": {k: str(v) for k, v in data.items() if v not in (None, "")},
                          "page": page.number, "results": page.paginator.count})
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "clinical/visit_worklist.html",
                  {"form": form, "page": page, "query": query.urlencode(), "labels": OUTCOME_LABELS})


@login_required
def visit_detail(request: HttpRequest, pk: int) -> HttpResponse:
    visit = get_scoped_or_404(CheckupVisit.objects.select_related("patient", "facility"), request.user, pk=pk)
    audit_record(kind=EventKind.PHI_READ, role=role_at(request.user, visit.facility_id),
                 facility_id=visit.facility_id, object_type="clinical.checkupvisit", object_id=visit.pk,
                 patient_id=visit.patient_id)
    detail = sel.visit_detail(visit=visit)
    mhlw = detail["screenings"].get("mhlw-2024")
    dock = detail["screenings"].get("ningen-dock")
    explanations = _explanations(visit, detail)
    rows = []
    for key, obs in sorted(detail["observations"].items(), key=lambda kv: list(BY_KEY).index(kv[0])):
        item = BY_KEY[key]
        value = obs.value_text if obs.value_num is None else format(obs.value_num.normalize(), "f")
        rows.append({"key": key, "label": item.label, "value": value, "unit": obs.unit,
                     "outcome": mhlw.items.get(key, "") if mhlw else "",
                     "dock": dock.items.get(key, "") if dock else "",
                     "reason": explanations.get(key, ""), "source": f"{obs.source} 行{obs.source_row}"})
    trends = _trend_charts(visit)
    return render(request, "clinical/visit_detail.html",
                  {"visit": visit, "rows": rows, "mhlw": mhlw, "dock": dock, "labels": OUTCOME_LABELS,
                   "trends": trends, "age": age_on(visit.patient.birth_date, visit.exam_date),
                   "actions": visit_actions(visit, request.user)})


def _explanations(visit: CheckupVisit, detail: dict[str, Any]) -> dict[str, str]:
    """The stored outcomes are what was judged; the reasons are re-derived from the same
    deterministic rule-set version (so 110,000 imports don't store 1.6M sentences)."""
    from clinical.judging import visit_input
    from clinical.screening import judge

    values = {k: (o.value_num, o.value_text) for k, o in detail["observations"].items()}
    vi = visit_input(visit.pk, visit.patient.sex, age_on(visit.patient.birth_date, visit.exam_date), visit.fasting,
                     values)
    judgement = judge(vi, load_ruleset("mhlw-2024"))
    return {r.field: r.reason for r in judgement.items}


def _trend_charts(visit: CheckupVisit) -> list[str]:
    series = sel.patient_trends(patient=visit.patient)
    ruleset = load_ruleset("mhlw-2024")
    charts = []
    for key in ("sbp", "dbp", "hba1c", "ldl", "tg", "hdl", "egfr", "ast", "alt", "ggt", "bmi"):
        points = series.get(key)
        if points:
            item = BY_KEY[key]
            lines = threshold_lines(ruleset, key, visit.patient.sex, visit.fasting)
            charts.append(trend_svg(item.label, item.unit, points, lines))
    return charts
