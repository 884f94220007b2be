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
from clinical.models.rulesets import FacilityRuleSet

__all__ = [
    "CheckupVisit", "Course", "Facility", "FacilityRuleSet", "ImportBatch", "ImportStatus", "MappingProfile",
    "Membership", "Observation", "Patient",
    "Role", "ScreeningResult", "Sex", "User", "VisitStatus",
]
