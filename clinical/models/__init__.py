from clinical.models.identity import Facility, Membership, Role, User
from clinical.models.patient import Patient, Sex

__all__ = ["Facility", "Membership", "Patient", "Role", "Sex", "User"]
