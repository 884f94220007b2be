from __future__ import annotations

from celery import shared_task

from audit.context import RequestContext, acting, new_request_id


@shared_task(name="clinical.run_import")
def run_import(batch_id: int) -> str:
    """Thin: the job row is the truth; running twice is harmless (the claim fails the second time)."""
    from clinical.intake.services import import_batch_run

    with acting(RequestContext(request_id=new_request_id(), channel="task")):
        batch = import_batch_run(batch_id=batch_id)
    return batch.status if batch is not None else "not-claimed"
