"""What inference announces. `inference` knows nothing of reports: it finishes a job and sends
`draft_ready` inside the transaction that marks the job SUCCEEDED, so a receiver that stores the
draft commits (or rolls back) together with the job's success — never one without the other."""

from django.dispatch import Signal

# kwargs: job (InferenceJob, status SUCCEEDED, with findings/report_text/grounding/inputs filled)
draft_ready = Signal()
