"""What each role may do at a facility. Memberships are materialised as django-guardian object
permissions on the Facility, so every check is one standard `has_perm(perm, facility)` call."""

from __future__ import annotations

from clinical.models import Role

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.STAFF: ("access_facility", "manage_patients", "import_checkups"),
    Role.PHYSICIAN: ("access_facility", "sign_reports"),
    Role.ADMIN: ("access_facility", "manage_patients", "import_checkups", "administer_facility", "review_audit"),
    Role.AUDITOR: ("review_audit",),
}


def perms_for(role: str) -> tuple[str, ...]:
    return ROLE_PERMISSIONS[role]
