"""Fixtures for inference: visits with observations and judgements, registered models, and a stub
engine class (a real implementation of the protocol that returns canned text), registered in the
engine pool for the test only."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from clinical.models import CheckupVisit, Observation, ScreeningResult
from inference import engine_pool
from inference.models import ModelVersion
from inference.services import model_version_register
from ml.protocol import DraftRequest, EngineEvent, EngineHealth, Finished, Started, Token
from tests.conftest import Personas
from tests.factories import PatientFactory

VALID_DRAFT = ('{"findings": [{"text": "収縮期血圧 152 mmHg：受診勧奨判定値以上。", "location": "血圧", '
               '"severity": "moderate", "confidence": 1.0}], "impression": "血圧が高値です。", '
               '"follow_up": {"needed": true, "recommendation": "医療機関を受診してください。"}}')


class CannedEngine:
    """Answers every request with the same text, a few characters per token."""

    name = "canned"

    def __init__(self, text: str, chunk: int = 5, delay: float = 0.0) -> None:
        self.model = "canned"
        self.text = text
        self.chunk = chunk
        self.delay = delay
        self.cancelled: set[str] = set()

    async def submit(self, request: DraftRequest) -> AsyncIterator[EngineEvent]:
        rid = request.request_id
        yield Started(rid, prompt_tokens=len(request.prompt))
        count = 0
        for start in range(0, len(self.text), self.chunk):
            if rid in self.cancelled:
                yield Finished(rid, self.text[:start], len(request.prompt), count, "cancelled")
                return
            count += 1
            yield Token(rid, self.text[start:start + self.chunk], count)
            await asyncio.sleep(self.delay)
        yield Finished(rid, self.text, len(request.prompt), count, "stop")

    async def cancel(self, request_id: str) -> bool:
        self.cancelled.add(request_id)
        return True

    async def health(self) -> EngineHealth:
        return EngineHealth(ok=True, engine=self.name, model=self.model)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def canned() -> Iterator[Callable[..., ModelVersion]]:
    """Register a model whose engine answers `text` (engine kind "canned", test only)."""
    engine_pool.register_engine_kind("canned", lambda location, options: CannedEngine(**options))
    counter = iter(range(1000))

    def make(text: str, **options: Any) -> ModelVersion:
        return model_version_register(name="canned", version=f"v{next(counter)}", engine="canned", location="canned",
                                      tasks=["checkup_summary"], options={"text": text, **options}, queue="default",
                                      enabled=True)

    yield make
    engine_pool.unregister_engine_kind("canned")


@pytest.fixture(autouse=True)
def _inference_urls(settings: Any) -> None:
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("inference_worklist")
    except NoReverseMatch:
        settings.ROOT_URLCONF = "tests.inference.urls"


@pytest.fixture(autouse=True)
def _no_auto_draft(settings: Any) -> None:
    # Visits made by fixtures must not queue jobs of their own; the auto-draft tests turn it on.
    settings.INFERENCE_AUTO_DRAFT = False


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    yield
    engine_pool.clear()


def make_visit(facility: Any, mrn: str = "A0001", sbp: str = "152") -> CheckupVisit:
    patient = PatientFactory.create(facility=facility, mrn=mrn, birth_date=dt.date(1970, 4, 1))
    visit = CheckupVisit.objects.create(facility=facility, patient=patient, exam_date=dt.date(2024, 6, 1),
                                        course="tokutei", status="screened", follow_up=True)
    for item, value, unit in (("sbp", sbp, "mmHg"), ("dbp", "96", "mmHg"), ("hba1c", "6.8", "%"),
                              ("ldl", "142", "mg/dL")):
        Observation.objects.create(visit=visit, item=item, value_num=Decimal(value), unit=unit, source="test")
    ScreeningResult.objects.create(visit=visit, ruleset="mhlw-2024", ruleset_version="4", follow_up=True,
                                   items={"sbp": "referral", "hba1c": "referral"},
                                   reasons=[f"収縮期血圧 {sbp} mmHg ≥ 受診勧奨判定値 140 mmHg",
                                            "HbA1c 6.8 % ≥ 受診勧奨判定値 6.5 %"])
    return visit


@pytest.fixture
def visit_a(personas: Personas) -> CheckupVisit:
    return make_visit(personas.facility_a)


@pytest.fixture
def visit_b(personas: Personas) -> CheckupVisit:
    return make_visit(personas.facility_b, mrn="B0001")


@pytest.fixture
def template_model(db: None) -> ModelVersion:
    return model_version_register(name="テンプレート下書き", version="template-ja-v1", engine="template",
                                  location="template-ja-v1", tasks=["checkup_summary", "cxr"],
                                  options={"chunk_chars": 4}, queue="default", enabled=True)
