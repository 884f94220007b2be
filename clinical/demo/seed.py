"""Demo data: two facilities, the five personas and ~50 examinees. Idempotent: running it twice
changes nothing. Used by `make run` (seed_demo) and by the browser tests."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical import services
from clinical.demo.names import FAMILY, GIVEN_F, GIVEN_M
from clinical.models import Facility, Patient, Role, User

DEMO_PASSWORD = "Demo-Pass-2026"  # 14 characters, 3 classes: passes the MHLW policy


@dataclass(frozen=True)
class Persona:
    username: str
    display_name: str
    kana: str
    facility_code: str
    role: str
    totp_key_hex: str | None  # fixed demo secrets so `demo_totp` can print today's code


PERSONAS = (
    Persona("staff_a", "受付 花子", "ウケツケ ハナコ", "TKY01", Role.STAFF, None),
    Persona("dr_a", "医師 一郎", "イシ イチロウ", "TKY01", Role.PHYSICIAN, "3132333435363738393031323334353637383930"),
    Persona("dr_b", "医師 二郎", "イシ ジロウ", "OSK01", Role.PHYSICIAN, "4142434445464748494a4b4c4d4e4f5051525354"),
    Persona("admin", "管理 三郎", "カンリ サブロウ", "TKY01", Role.ADMIN, "6162636465666768696a6b6c6d6e6f7071727374"),
    Persona("auditor", "監査 四郎", "カンサ シロウ", "TKY01", Role.AUDITOR, None),
)
FACILITIES = (("TKY01", "東京健診センター"), ("OSK01", "大阪総合病院 健診部"))


@transaction.atomic
def seed_demo(*, patients_per_facility: int = 25) -> dict[str, int]:
    facilities = {}
    for code, name in FACILITIES:
        facility = Facility.objects.filter(code=code).first() or services.facility_create(code=code, name=name)
        facilities[code] = facility
    for persona in PERSONAS:
        user = User.objects.filter(username=persona.username).first()
        if user is None:
            user = services.user_create(username=persona.username, password=DEMO_PASSWORD,
                                        display_name=persona.display_name, display_name_kana=persona.kana)
        services.membership_grant(user=user, facility=facilities[persona.facility_code], role=persona.role)
        if persona.totp_key_hex and not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            TOTPDevice.objects.create(user=user, name="demo", key=persona.totp_key_hex, confirmed=True)
    staff = User.objects.get(username="staff_a")
    admin_b = _facility_admin(facilities["OSK01"])
    rng = random.Random(20260401)  # fixed seed: the same demo every time
    created = 0
    for code, facility in facilities.items():
        actor = staff if code == "TKY01" else admin_b
        for i in range(1, patients_per_facility + 1):
            mrn = f"{code[:1]}{i:06d}"
            if Patient.objects.filter(facility=facility, mrn=mrn).exists():
                continue
            sex = "M" if rng.random() < 0.5 else "F"
            family, family_kana = rng.choice(FAMILY)
            given, given_kana = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
            birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 55))
            services.patient_create(facility=facility, mrn=mrn, family_name=family, given_name=given,
                                    family_name_kana=family_kana, given_name_kana=given_kana, sex=sex,
                                    birth_date=birth, actor=actor)
            created += 1
    return {"facilities": len(facilities), "personas": len(PERSONAS), "patients_created": created}


def _facility_admin(facility: Facility) -> User:
    """Facility B's patients are registered by a dedicated service account, not by a persona of A."""
    user = User.objects.filter(username=f"import_{facility.code.lower()}").first()
    if user is None:
        user = User.objects.create(username=f"import_{facility.code.lower()}", display_name="取込システム",
                                   is_active=False)
        user.set_unusable_password()
        user.save()
    services.membership_grant(user=user, facility=facility, role=Role.STAFF)
    return user
