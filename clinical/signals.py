"""What clinical announces to the layers above it (clinical knows nothing of inference).

Bulk imports write by COPY / bulk_create, which send no `post_save`: they announce the visits
they created here instead, inside the import's transaction (receivers defer work to on_commit)."""

from django.dispatch import Signal

# kwargs: visit_ids (list[int]) — visits created by an import
visits_arrived = Signal()
# kwargs: study_ids (list[int]) — DICOM studies that arrived (matched to a patient)
studies_arrived = Signal()
