"""QIDO-RS query keys (PS3.18 8.3.4 / 10.6) → Django filters, and results → DICOM JSON.

Matching follows PS3.4 C.2.2.2: single value, wildcard (* ?) for string attributes, lists of UIDs
(comma or backslash), date ranges (A-B, -B, A-), and an empty value as "return it, match all".
Keys are accepted by keyword or by tag (0020000D). Keys we do not search on are reported in a
Warning header, as PS3.18 allows, instead of failing the whole query."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef, Q

from clinical.dicom.metadata import UTF8, element
from clinical.dicom.models import Series

LEVELS = ("study", "series", "instance")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "_", "facility"}

# keyword → (tag, model path per level, kind). Paths are relative to the level's model.
_STUDY = {
    "StudyInstanceUID": ("0020000D", "study_instance_uid", "uid"),
    "PatientID": ("00100020", "dicom_patient_id", "string"),
    "PatientName": ("00100010", "patient_name", "pn"),
    "PatientBirthDate": ("00100030", "patient_birth_date", "string"),
    "PatientSex": ("00100040", "patient_sex", "string"),
    "StudyDate": ("00080020", "study_date", "date"),
    "StudyTime": ("00080030", "study_time", "string"),
    "AccessionNumber": ("00080050", "accession_number", "string"),
    "StudyID": ("00200010", "study_id", "string"),
    "StudyDescription": ("00081030", "study_description", "string"),
    "ReferringPhysicianName": ("00080090", "referring_physician_name", "pn"),
    "ModalitiesInStudy": ("00080061", "", "modalities"),
}
_SERIES = {
    "SeriesInstanceUID": ("0020000E", "series_instance_uid", "uid"),
    "Modality": ("00080060", "modality", "string"),
    "SeriesNumber": ("00200011", "series_number", "int"),
    "SeriesDescription": ("0008103E", "series_description", "string"),
    "BodyPartExamined": ("00180015", "body_part_examined", "string"),
}
_INSTANCE = {
    "SOPInstanceUID": ("00080018", "sop_instance_uid", "uid"),
    "SOPClassUID": ("00080016", "sop_class_uid", "uid"),
    "InstanceNumber": ("00200013", "instance_number", "int"),
}
_TAG_TO_KEYWORD = {spec[0]: kw for table in (_STUDY, _SERIES, _INSTANCE) for kw, spec in table.items()}


class QueryError(ValueError):
    pass


@dataclass
class Query:
    q: Q = field(default_factory=Q)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    unsupported: list[str] = field(default_factory=list)
    uid_keys: dict[str, list[str]] = field(default_factory=dict)  # for auditing a miss


def _prefixes(level: str) -> dict[str, tuple[dict[str, tuple[str, str, str]], str]]:
    """Which attribute tables a level can search, and the ORM prefix from that level's model."""
    if level == "study":
        return {"study": (_STUDY, "")}
    if level == "series":
        return {"study": (_STUDY, "study__"), "series": (_SERIES, "")}
    return {"study": (_STUDY, "study__"), "series": (_SERIES, "series__"), "instance": (_INSTANCE, "")}


def parse_query(params: Mapping[str, list[str]], level: str) -> Query:
    query = Query()
    tables = _prefixes(level)
    for raw_key, values in params.items():
        key = raw_key.strip()
        if key in _CONTROL:
            continue
        keyword = _TAG_TO_KEYWORD.get(key.upper(), key)
        spec = next(((t[keyword], prefix) for t, prefix in tables.values() if keyword in t), None)
        if spec is None:
            query.unsupported.append(key)
            continue
        (_tag, path, kind), prefix = spec
        for value in values:
            if value == "":
                continue  # universal match
            query.q &= _match(kind, prefix, path, value, level)
            if kind == "uid":
                query.uid_keys[keyword] = _uid_list(value)
    query.limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    query.offset = _int_param(params, "offset", 0, 0, 10**9)
    return query


def _int_param(params: Mapping[str, list[str]], name: str, default: int, lo: int, hi: int) -> int:
    values = params.get(name)
    if not values or values[-1] == "":
        return default
    try:
        number = int(values[-1])
    except ValueError:
        raise QueryError(f"{name} は整数で指定してください: {values[-1]!r}") from None
    if number < lo:
        raise QueryError(f"{name} は {lo} 以上で指定してください")
    return min(number, hi)


def _uid_list(value: str) -> list[str]:
    return [u.strip() for u in re.split(r"[,\\]", value) if u.strip()]


def _match(kind: str, prefix: str, path: str, value: str, level: str) -> Q:
    field_name = prefix + path
    if kind == "uid":
        uids = _uid_list(value)
        return Q(**{f"{field_name}__in": uids}) if len(uids) > 1 else Q(**{field_name: uids[0]})
    if kind == "date":
        return _date_range(field_name, value)
    if kind == "int":
        try:
            return Q(**{field_name: int(value)})
        except ValueError:
            raise QueryError(f"{path} は整数で指定してください: {value!r}") from None
    if kind == "modalities":
        modalities = [m.strip() for m in re.split(r"[,\\]", value) if m.strip()]
        study_ref = OuterRef("pk") if level == "study" else OuterRef("study_id")
        return Q(Exists(Series.objects.filter(study_id=study_ref, modality__in=modalities)))
    if kind == "pn":
        return _name_match(field_name, value)
    return _string_match(field_name, value)


def _date_range(field_name: str, value: str) -> Q:
    def day(text: str) -> dt.date:
        try:
            return dt.datetime.strptime(text.strip(), "%Y%m%d").date()
        except ValueError:
            raise QueryError(f"日付は YYYYMMDD で指定してください: {text!r}") from None

    if "-" not in value:
        return Q(**{field_name: day(value)})
    start, end = value.split("-", 1)
    q = Q()
    if start.strip():
        q &= Q(**{f"{field_name}__gte": day(start)})
    if end.strip():
        q &= Q(**{f"{field_name}__lte": day(end)})
    return q


def _string_match(field_name: str, value: str) -> Q:
    if "*" not in value and "?" not in value:
        return Q(**{field_name: value})
    if value.endswith("*") and "*" not in value[:-1] and "?" not in value:
        return Q(**{f"{field_name}__startswith": value[:-1]}) if value != "*" else Q()
    return Q(**{f"{field_name}__regex": _wildcard_regex(value)})


def _name_match(field_name: str, value: str) -> Q:
    """PN: case-insensitive, and a pattern may match any component group (alphabetic,
    ideographic, phonetic), so 山田* and Yamada* and やまだ* all find 'Yamada^Tarou=山田^太郎=…'."""
    pattern = _wildcard_regex(value if value.endswith("*") or "^" in value else value + "*")
    body = pattern[1:-1]  # strip ^ and $
    return Q(**{f"{field_name}__iregex": f"(^|=){body}(=|$)"})


def _wildcard_regex(value: str) -> str:
    # Group separators stay literal; * and ? stop at a group boundary so one group is matched.
    out = "".join("[^=]*" if ch == "*" else "[^=]" if ch == "?" else re.escape(ch) for ch in value)
    return f"^{out}$"


# --- responses -------------------------------------------------------------------------------

def study_attributes(study: Any, counts: tuple[int, int], modalities: list[str], base_url: str) -> dict[str, Any]:
    return {
        "00080005": dict(UTF8),
        "00080020": element("DA", study.study_date.strftime("%Y%m%d") if study.study_date else ""),
        "00080030": element("TM", study.study_time),
        "00080050": element("SH", study.accession_number),
        "00080056": element("CS", "ONLINE"),
        "00080061": element("CS", modalities),
        "00080090": element("PN", study.referring_physician_name),
        "00081030": element("LO", study.study_description),
        "00081190": element("UR", f"{base_url}/studies/{study.study_instance_uid}"),
        "00100010": element("PN", study.patient_name),
        "00100020": element("LO", study.dicom_patient_id),
        "00100030": element("DA", study.patient_birth_date),
        "00100040": element("CS", study.patient_sex),
        "0020000D": element("UI", study.study_instance_uid),
        "00200010": element("SH", study.study_id),
        "00201206": element("IS", counts[0]),
        "00201208": element("IS", counts[1]),
    }


def series_attributes(series: Any, count: int, base_url: str, *, with_study: bool) -> dict[str, Any]:
    study = series.study
    out = {
        "00080005": dict(UTF8),
        "00080060": element("CS", series.modality),
        "0008103E": element("LO", series.series_description),
        "00081190": element("UR", f"{base_url}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"),
        "00180015": element("CS", series.body_part_examined),
        "0020000D": element("UI", study.study_instance_uid),
        "0020000E": element("UI", series.series_instance_uid),
        "00200011": element("IS", series.series_number),
        "00201209": element("IS", count),
    }
    if with_study:
        out.update({
            "00080020": element("DA", study.study_date.strftime("%Y%m%d") if study.study_date else ""),
            "00080050": element("SH", study.accession_number),
            "00100010": element("PN", study.patient_name),
            "00100020": element("LO", study.dicom_patient_id),
        })
    return dict(sorted(out.items()))


def instance_attributes(instance: Any, base_url: str, *, with_parents: bool) -> dict[str, Any]:
    series, study = instance.series, instance.study
    url = (f"{base_url}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
           f"/instances/{instance.sop_instance_uid}")
    out = {
        "00080005": dict(UTF8),
        "00080016": element("UI", instance.sop_class_uid),
        "00080018": element("UI", instance.sop_instance_uid),
        "00080056": element("CS", "ONLINE"),
        "00081190": element("UR", url),
        "0020000D": element("UI", study.study_instance_uid),
        "0020000E": element("UI", series.series_instance_uid),
        "00200013": element("IS", instance.instance_number),
        "00280008": element("IS", instance.number_of_frames or None),
        "00280010": element("US", instance.rows),
        "00280011": element("US", instance.columns),
    }
    if with_parents:
        out.update({"00080060": element("CS", series.modality), "00100020": element("LO", study.dicom_patient_id)})
    return dict(sorted(out.items()))
