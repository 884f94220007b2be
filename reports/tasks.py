from __future__ import annotations

from celery import shared_task

from audit.context import RequestContext, acting, new_request_id


@shared_task(name="reports.print_batch")
def print_batch(batch_id: int) -> str:
    """Thin: the job row is the truth; a second delivery finds it claimed and does nothing."""
    from reports.printing import print_batch_run

    with acting(RequestContext(request_id=new_request_id(), channel="task")):
        batch = print_batch_run(batch_id=batch_id)
    return batch.status if batch is not None else "not-claimed"
