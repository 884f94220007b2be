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


# --- update_rows_returning: many rows, each with values of its own, one statement -------------------


def _three_jobs(personas: Personas, visit_a: CheckupVisit) -> list[InferenceJob]:
    return [services.job_create(actor=personas.physician_a, visit=v)
            for v in (visit_a, make_visit(personas.facility_a, mrn="P2"), make_visit(personas.facility_a, mrn="P3"))]


def test_many_rows_each_get_their_own_values_in_one_statement_and_come_back_converted(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    import datetime as dt

    from inference.returning import update_rows_returning

    jobs = _three_jobs(personas, visit_a)
    at = dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.UTC)
    rows = [({"id": job.pk, "status": "queued"},
             {"error": f"理由{i}", "attempts": i + 1, "finished_at": at, "findings": {"n": i}})
            for i, job in enumerate(jobs[:2])]
    with django_assert_num_queries(1):  # type: ignore[operator]
        written = update_rows_returning(InferenceJob, rows)

    assert sorted(written) == [jobs[0].pk, jobs[1].pk]
    second = written[jobs[1].pk]
    assert (second.error, second.attempts, second.finished_at, second.findings) == ("理由1", 2, at, {"n": 1})
    assert list(InferenceJob.objects.order_by("pk").values_list("error", "findings")) == [
        ("理由0", {"n": 0}), ("理由1", {"n": 1}), ("", None)]  # the third was not asked for


def test_a_row_whose_match_fails_is_left_alone_and_not_returned(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """As a final write of a job another worker took: its ownership condition fails."""
    from inference.returning import update_rows_returning

    jobs = _three_jobs(personas, visit_a)
    InferenceJob.objects.filter(pk=jobs[1].pk).update(status="running", worker_id="w:other")
    written = update_rows_returning(InferenceJob, [
        ({"id": job.pk, "worker_id": ""}, {"error": "x"}) for job in jobs])
    assert sorted(written) == [jobs[0].pk, jobs[2].pk]
    assert InferenceJob.objects.get(pk=jobs[1].pk).error == ""


def test_keep_leaves_a_value_the_row_has_and_fill_skips_a_none(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    import datetime as dt

    from inference.returning import update_rows_returning

    jobs = _three_jobs(personas, visit_a)
    earlier = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)
    later = earlier + dt.timedelta(seconds=5)
    InferenceJob.objects.filter(pk=jobs[0].pk).update(first_token_at=earlier, partial_text="胸部", completion_tokens=3)
    written = update_rows_returning(InferenceJob, [
        ({"id": jobs[0].pk}, {"first_token_at": later, "partial_text": None, "completion_tokens": 7}),
        ({"id": jobs[1].pk}, {"first_token_at": later, "partial_text": "心電図", "completion_tokens": None}),
    ], keep={"first_token_at"}, fill={"partial_text", "completion_tokens"})
    assert (written[jobs[0].pk].first_token_at, written[jobs[0].pk].partial_text,
            written[jobs[0].pk].completion_tokens) == (earlier, "胸部", 7)
    assert (written[jobs[1].pk].first_token_at, written[jobs[1].pk].partial_text,
            written[jobs[1].pk].completion_tokens) == (later, "心電図", 0)


def test_rows_that_differ_in_fields_or_name_one_row_twice_are_refused_before_anything_is_written(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    from inference.returning import update_rows_returning

    jobs = _three_jobs(personas, visit_a)
    with pytest.raises(ValueError, match="same fields"):
        update_rows_returning(InferenceJob, [({"id": jobs[0].pk}, {"error": "x"}),
                                             ({"id": jobs[1].pk}, {"attempts": 2})])
    with pytest.raises(ValueError, match="same match"):
        update_rows_returning(InferenceJob, [({"id": jobs[0].pk}, {"error": "x"}),
                                             ({"id": jobs[0].pk}, {"error": "y"})])
    with pytest.raises(ValueError, match="values"):
        update_rows_returning(InferenceJob, [({"id": jobs[0].pk}, {})])
    assert update_rows_returning(InferenceJob, []) == {}
    assert set(InferenceJob.objects.values_list("error", flat=True)) == {""}


def test_a_value_longer_than_its_column_is_refused_not_cut_and_a_match_on_none_is_refused(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """As `QuerySet.update` would: a cast of the VALUES column to varchar(50) would have cut it."""
    from django.db import DataError, transaction

    from inference.returning import update_rows_returning

    jobs = _three_jobs(personas, visit_a)
    with pytest.raises(DataError), transaction.atomic():
        update_rows_returning(InferenceJob, [({"id": jobs[0].pk}, {"prompt_version": "v" * 51})])
    with pytest.raises(ValueError, match="None"):
        update_rows_returning(InferenceJob, [({"id": jobs[0].pk, "worker_id": None}, {"error": "x"})])
    assert InferenceJob.objects.get(pk=jobs[0].pk).prompt_version == ""
