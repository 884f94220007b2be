"""Register the template drafter (enabled) so the embedded demo produces drafts without a GPU.
It is a template, named as one: never presented as an LMM. Idempotent."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.context import RequestContext, acting, new_request_id


class Command(BaseCommand):
    help = "テンプレート下書きエンジンをモデル登録に追加します（デモ用・AIモデルではありません）"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--delay", type=float, default=0.02, help="seconds between chunks (shows streaming)")
        parser.add_argument("--drafts", type=int, default=6,
                            help="draft this many flagged demo visits per facility now (the physician's worklist)")

    def handle(self, *args: Any, **options: Any) -> None:
        from inference.services import model_version_register
        from ml.schemas import TASKS

        with acting(RequestContext(request_id=new_request_id(), channel="command")):
            mv = model_version_register(
                name="テンプレート下書き", version="template-ja-v1", engine="template", location="template-ja-v1",
                tasks=list(TASKS), modalities=["CR", "DX", "OP", "CT", "ECG"],
                options={"chunk_chars": 4, "delay": options["delay"]}, queue="default", enabled=True,
            )
        self.stdout.write(f"registered {mv} (id {mv.pk}, engine {mv.engine}, queue {mv.queue})")
        if options["drafts"]:
            self.stdout.write(f"demo drafts: {_demo_drafts(options['drafts'])}")


def _demo_drafts(per_facility: int) -> int:
    """Run the template drafter now, in this process, for the most recent flagged visits that have
    no job yet, so the physician's worklist is not empty on first login. The job rows go through
    the same services and runner as a worker's; the claim makes a late broker message a no-op."""
    from clinical.models import CheckupVisit, Facility
    from inference import engine_pool
    from inference.models import InferenceJob
    from ml.engines import build_engine

    # Seeding needs no visible streaming: the same template engine without the per-chunk pause.
    engine_pool.register_engine_kind(
        "template", lambda location, options: build_engine("template", location, **{**options, "delay": 0.0}))
    from inference.runner import run_job
    from inference.services import jobs_create_for_arrival

    done = 0
    for facility in Facility.objects.all():
        drafted = InferenceJob.objects.filter(visit__facility=facility).values_list("visit_id", flat=True)
        visit_ids = list(CheckupVisit.objects.filter(facility=facility, follow_up=True).exclude(id__in=drafted)
                         .order_by("-exam_date").values_list("id", flat=True)[:per_facility])
        with acting(RequestContext(request_id=new_request_id(), channel="command")):
            jobs = jobs_create_for_arrival(visit_ids=visit_ids)
            for job in jobs:
                run_job(job.pk)
                done += 1
    engine_pool.unregister_engine_kind("template")
    return done
