"""What a model is given for a job, rebuilt from the database by the worker (the broker carries only
the job id): the rendered prompt, images, structured input, and the reference data (参考データ)
and number sources that the draft is recorded with and checked against."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clinical.dicom.models import Instance, Study
from clinical.intake.items import BY_KEY
from clinical.judging import age_on
from clinical.models import CheckupVisit, Observation, ScreeningResult
from inference.models import InferenceJob, ModelVersion
from ml.prompts import render_prompt
from ml.protocol import DraftRequest, ImagePart
from ml.schemas import draft_schema

# DICOM modality → drafting task. ECG waveforms are recognised by their content, not the modality.
MODALITY_TASKS = {"CR": "cxr", "DX": "cxr", "OP": "fundus", "XC": "fundus", "CT": "ct", "ECG": "ecg"}
MAX_IMAGES = 2


class InputError(ValueError):
    """The target lacks what its task needs (no observations, no images): the job fails with this."""


@dataclass
class PreparedInput:
    request: DraftRequest
    reference_data: dict[str, str]
    sources: dict[str, Any]  # for ml.grounding.check_grounding
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs_record(self) -> dict[str, Any]:
        payload = {
            "prompt": self.request.prompt,
            "system": self.request.system,
            "structured_input": self.request.structured_input,
            "images": [hashlib.sha256(i.png).hexdigest() for i in self.request.images],
        }
        digest = hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str).encode())
        return {"sha256": digest.hexdigest(), "summary": self.summary}


def task_for_study(study: Study) -> str | None:
    if Instance.objects.filter(study=study, has_waveform=True).exists():
        return "ecg"
    for modality in study.series.values_list("modality", flat=True):
        if (task := MODALITY_TASKS.get((modality or "").upper())) is not None:
            return task
    return None


def _plain(value: Decimal) -> str:
    # Decimal("6.8000") → "6.8", Decimal("140.0000") → "140": written as the laboratory would.
    return f"{value.normalize():f}"


def prepare(job: InferenceJob) -> PreparedInput:
    mv = job.model_version
    if job.visit_id is not None:
        return _for_visit(job, mv, job.visit)  # type: ignore[arg-type]
    assert job.study is not None
    return _for_study(job, mv, job.study)


def _patient_of(job: InferenceJob, target: CheckupVisit | Study) -> Any:
    """The visit's or study's patient: the job's own when it is the same one (the worker claimed the
    job with it, a query saved per draft), else the target's."""
    if target.patient_id is not None and target.patient_id == job.patient_id:
        return job.patient
    return target.patient


def _request(job: InferenceJob, mv: ModelVersion, prompt: Any, structured: dict[str, Any],
             images: tuple[ImagePart, ...] = ()) -> DraftRequest:
    return DraftRequest(
        request_id=f"job-{job.pk}-{job.attempts}",
        task=job.task,
        prompt=prompt.text,
        system=prompt.system,
        prompt_version=prompt.version,
        images=images,
        max_new_tokens=mv.max_new_tokens,
        json_schema=draft_schema(job.task),
        structured_input=structured,
    )


def _measurements(observations: list[Observation]) -> dict[str, dict[str, str]]:
    """item → {"value", "label", "unit"}, in the order given (the prompt lists them so)."""
    measurements: dict[str, dict[str, str]] = {}
    for obs in observations:
        item = BY_KEY.get(obs.item)
        label = item.label if item else obs.item
        unit = obs.unit or (item.unit if item else "")
        value = _plain(obs.value_num) if obs.value_num is not None else obs.value_text
        measurements[obs.item] = {"value": value, "label": label, "unit": unit}
    return measurements


def _reference(measurements: dict[str, dict[str, str]]) -> dict[str, str]:
    return {m["label"]: f"{m['value']} {m['unit']}".strip() for m in measurements.values()}


def _reasons(screenings: list[ScreeningResult]) -> list[tuple[str, str, bool]]:
    """(rule set, reason, referral) of every judgement reason, in rule-set order."""
    return [(sr.ruleset, str(text), bool(sr.follow_up)) for sr in screenings for text in sr.reasons or []]


def sources_from(observations: list[Observation], screenings: list[ScreeningResult]) -> dict[str, str]:
    """The number sources of a visit's draft (label → "value unit", 判定理由N → reason), from rows
    already loaded: observations by id, screening results by rule set."""
    sources = _reference(_measurements(observations))
    sources.update({f"判定理由{i}": text for i, (_rs, text, _ref) in enumerate(_reasons(screenings), start=1)})
    return sources


def visit_sources(visit: CheckupVisit) -> dict[str, str]:
    """What a draft of `visit` would be checked against now. Without a job: callers outside drafting
    (a report whose visit was corrected) re-check text against the same data a new draft would get."""
    return sources_from(list(Observation.objects.filter(visit=visit).order_by("id")),
                        list(ScreeningResult.objects.filter(visit=visit).order_by("ruleset")))


def _for_visit(job: InferenceJob, mv: ModelVersion, visit: CheckupVisit) -> PreparedInput:
    observations = list(Observation.objects.filter(visit=visit).order_by("id"))
    if not observations:
        raise InputError("この受診には検査結果がありません")
    screenings = list(ScreeningResult.objects.filter(visit=visit).order_by("ruleset"))
    measurements = _measurements(observations)
    reference = _reference(measurements)
    judged = _reasons(screenings)
    reasons = [{"text": text, "referral": referral} for _rs, text, referral in judged]
    outcome_lines = [f"{ruleset}: {text}" for ruleset, text, _ref in judged]
    patient = _patient_of(job, visit)
    prompt = render_prompt(
        job.task, mv.prompt_version or None,
        age=age_on(patient.birth_date, visit.exam_date), sex=patient.sex, clinical_notes="なし",
        reference_data=reference, screening_results=outcome_lines, study_findings="なし",
    )
    # The same function a corrected visit's reports are re-checked with: one definition of a source.
    sources: dict[str, Any] = sources_from(observations, screenings)
    structured = {"measurements": measurements, "reasons": reasons}
    summary = {"visit": visit.pk, "exam_date": str(visit.exam_date), "observations": len(observations),
               "reasons": len(reasons)}
    return PreparedInput(_request(job, mv, prompt, structured), reference, sources, summary)


def _for_study(job: InferenceJob, mv: ModelVersion, study: Study) -> PreparedInput:
    from clinical.dicom.storage import ContentStore

    store = ContentStore()
    patient = _patient_of(job, study) if study.patient_id is not None else None
    age: Any = age_on(patient.birth_date, study.study_date) if patient and study.study_date else "不明"
    sex: Any = patient.sex if patient else (study.patient_sex or "不明")
    reference: dict[str, str] = {}
    sources: dict[str, Any] = {}
    structured: dict[str, Any] = {}
    images: list[ImagePart] = []
    if job.task == "ecg":
        from ml.preprocess.ecg import ecg_from_dicom, ecg_measurements, ecg_summary_ja
        from ml.preprocess.ecg_render import render_ecg_png

        inst = Instance.objects.filter(study=study, has_waveform=True).order_by("id").first()
        if inst is None:
            raise InputError("心電図波形がありません")
        record = ecg_from_dicom(store.open(inst.sha256))
        measured = ecg_measurements(record)
        sources = dict(measured.as_sources())
        reference = {k: str(v) for k, v in sources.items()}
        keys = {"心拍数": "hr", "PR": "pr", "QRS": "qrs", "QT": "qt", "QTc": "qtc"}
        structured = {"measurements": {keys[k]: v for k, v in sources.items() if k in keys}}
        images.append(ImagePart(render_ecg_png(record, measured), "12誘導心電図"))
        prompt = render_prompt(job.task, mv.prompt_version or None, age=age, sex=sex, clinical_notes="なし",
                               ecg_summary=ecg_summary_ja(measured))
    else:
        from ml.preprocess import dicom_to_png, fundus_to_png

        instances = list(Instance.objects.filter(study=study, number_of_frames__gt=0)
                         .order_by("series_id", "instance_number", "id")[:MAX_IMAGES])
        if not instances:
            raise InputError("画像がありません")
        for inst in instances:
            data = store.open(inst.sha256)
            image = fundus_to_png(data) if job.task == "fundus" else dicom_to_png(data)
            images.append(ImagePart(image.png, study.study_description or job.task))
        context: dict[str, Any] = {"age": age, "sex": sex, "clinical_notes": "なし", "reference_data": "なし",
                                   "body_part": study.study_description or "不明", "eye": "両眼"}
        prompt = render_prompt(job.task, mv.prompt_version or None, **context)
    summary = {"study": study.pk, "study_instance_uid": study.study_instance_uid, "images": len(images)}
    return PreparedInput(_request(job, mv, prompt, structured, tuple(images)), reference, sources, summary)
