"""What clinical announces to the layers above it (clinical knows nothing of inference).

Bulk imports write by COPY / bulk_create, which send no `post_save`: they announce the visits
they created here instead, inside the import's transaction (receivers defer work to on_commit)."""

from django.dispatch import Signal

# kwargs: visit_ids (list[int]) — visits created by an import
visits_arrived = Signal()
# kwargs: study_ids (list[int]) — DICOM studies that arrived (matched to a patient)
studies_arrived = Signal()
# kwargs: visit_ids (list[int]) — visits whose values an import corrected; changes
# (dict[int, dict[str, list[str]]]) — {visit_id: {item: [before, after]}} as shown to people
# ("6.8", "7.1"; "fasting": ["True", "False"]); actor (User | None) — who ran the import.
# Sent inside the import's transaction after the corrected visits are re-judged, so a receiver
# reads the corrected observations and judgements (reports re-ground their drafts and signed text).
visits_corrected = Signal()
