"""Factories for volume; personas (conftest) for the people tests talk about."""

from __future__ import annotations

import datetime as dt

import factory

from clinical.models import Facility, Patient


class FacilityFactory(factory.django.DjangoModelFactory[Facility]):
    class Meta:
        model = Facility
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"F{n:04d}")
    name = factory.Sequence(lambda n: f"テスト健診センター{n}")


class PatientFactory(factory.django.DjangoModelFactory[Patient]):
    class Meta:
        model = Patient

    facility = factory.SubFactory(FacilityFactory)
    mrn = factory.Sequence(lambda n: f"P{n:07d}")
    family_name = "山田"
    given_name = "太郎"
    family_name_kana = "ヤマダ"
    given_name_kana = "タロウ"
    sex = "M"
    birth_date = dt.date(1970, 4, 1)
