"""`update_returning`: Django writes the UPDATE, the statement returns the rows it left."""

from __future__ import annotations

import pytest
from django.db.models import F

from clinical.models import CheckupVisit
from inference import services
from inference.models import InferenceJob, ModelVersion
from inference.returning import update_returning
from tests.conftest import Personas
from tests.inference.conftest import make_visit

pytestmark = pytest.mark.django_db


def test_only_the_rows_the_filter_matches_are_updated_and_returned_with_expressions_applied(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    jobs = [services.job_create(actor=personas.physician_a, visit=v)
            for v in (visit_a, make_visit(personas.facility_a, mrn="P2"), make_visit(personas.facility_a, mrn="P3"))]
    chosen = [jobs[0].pk, jobs[2].pk]

    rows = update_returning(InferenceJob.objects.filter(pk__in=chosen),
                            {"attempts": F("attempts") + 2, "error": "理由"}, related=("visit",))

    assert sorted(r.pk for r in rows) == chosen
    assert all(r.attempts == 2 and r.error == "理由" and r.visit is not None and r.visit.pk == r.visit_id for r in rows)
    assert list(InferenceJob.objects.order_by("pk").values_list("attempts", flat=True)) == [2, 0, 2]


def test_nothing_matched_returns_an_empty_list(template_model: ModelVersion) -> None:
    assert update_returning(InferenceJob.objects.filter(pk=-1), {"error": "x"}) == []
    assert update_returning(InferenceJob.objects.filter(pk__in=[]), {"error": "x"}) == []


def test_a_filter_on_a_foreign_keys_own_column_is_allowed(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """`visit=…` compares the job's own visit_id (Django trims the join): no subquery needed."""
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    services.job_create(actor=personas.physician_a, visit=make_visit(personas.facility_a, mrn="P2"))
    [row] = update_returning(InferenceJob.objects.filter(visit=visit_a), {"error": "理由"}, related=("patient",))
    assert row.pk == job.pk and row.patient == visit_a.patient


def test_a_sliced_queryset_or_nothing_to_set_is_refused(template_model: ModelVersion) -> None:
    with pytest.raises(TypeError, match="slice"):
        update_returning(InferenceJob.objects.all()[:1], {"error": "x"})
    with pytest.raises(ValueError, match="values"):
        update_returning(InferenceJob.objects.all(), {})


def test_a_filter_across_a_relation_is_refused_not_silently_misapplied(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    services.job_create(actor=personas.physician_a, visit=visit_a)
    with pytest.raises(ValueError, match="own columns"):
        update_returning(InferenceJob.objects.filter(visit__patient=visit_a.patient), {"error": "x"})
    assert not InferenceJob.objects.filter(error="x").exists()


def test_a_name_that_is_not_a_foreign_key_is_refused_before_anything_is_written(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    services.job_create(actor=personas.physician_a, visit=visit_a)
    with pytest.raises(ValueError, match="not a foreign key"):
        update_returning(InferenceJob.objects.all(), {"error": "x"}, related=("task",))
    assert not InferenceJob.objects.filter(error="x").exists()
