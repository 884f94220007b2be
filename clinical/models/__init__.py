from clinical.models.checkup import (
    CheckupVisit,
    Course,
    ImportBatch,
    ImportStatus,
    MappingProfile,
    Observation,
    ScreeningResult,
    VisitStatus,
)
from clinical.models.identity import Facility, Membership, Role, User
from clinical.models.patient import Patient, Sex

__all__ = [
    "CheckupVisit", "Course", "Facility", "ImportBatch", "ImportStatus", "MappingProfile", "Membership",
    "Observation", "Patient",
    "Role", "ScreeningResult", "Sex", "User", "VisitStatus",
]
