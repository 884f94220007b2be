from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from clinical.intake.services import import_batch_create, import_batch_run
from clinical.models import ImportBatch, Patient
from tests.conftest import Personas
from tests.factories import PatientFactory

HEADER = ("受診者番号,受診日,コース,空腹時,腹囲(cm),BMI,収縮期血圧(mmHg),拡張期血圧(mmHg),中性脂肪,HDLコレステロール,"
          "HbA1c(%),AST,尿蛋白,喫煙")


@pytest.fixture
def examinees(personas: Personas) -> dict[str, Patient]:
    return {
        "A0001": PatientFactory.create(facility=personas.facility_a, mrn="A0001", sex="M",
                                       birth_date=dt.date(1970, 4, 1)),
        "A0002": PatientFactory.create(facility=personas.facility_a, mrn="A0002", sex="F", family_name="佐藤",
                                       given_name="花子", birth_date=dt.date(1955, 6, 1)),
        "B0001": PatientFactory.create(facility=personas.facility_b, mrn="B0001"),
    }


@pytest.fixture
def run_file(tmp_path: Path, personas: Personas, settings: object) -> Callable[..., ImportBatch]:
    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]

    def run(text: str, *, name: str = "checkup.csv", encoding: str = "utf-8") -> ImportBatch:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        with path.open("rb") as f:
            batch = import_batch_create(facility=personas.facility_a, file_name=name, content=f,
                                        actor=personas.staff_a)
        import_batch_run(batch_id=batch.pk)
        batch.refresh_from_db()
        return batch

    return run
