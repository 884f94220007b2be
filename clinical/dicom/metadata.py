"""DICOM JSON (PS3.18 Annex F) for WADO-RS metadata and the QIDO-RS attribute sets.

An instance's full JSON comes from pydicom's own encoder (its handling of PN groups, multi-valued
strings and binary VRs is the one we rely on); pixel data is replaced by a BulkDataURI relative to
the instance, made absolute when served, because the stored JSON must not depend on the host name
the next client happens to use."""

from __future__ import annotations

import io
import warnings
from typing import Any

import pydicom

PIXEL_TAGS = {"7FE00010": "OB", "7FE00008": "OF", "7FE00009": "OD"}
UTF8 = {"vr": "CS", "Value": ["ISO_IR 192"]}
BULK_PREFIX = "bulkdata/"


def instance_json(data: bytes) -> dict[str, Any]:
    """The whole object as DICOM JSON, without its pixel data (a relative BulkDataURI instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data))
        pixel_vrs = {tag: str(ds[int(tag, 16)].VR) for tag in PIXEL_TAGS if int(tag, 16) in ds}
        for tag in pixel_vrs:
            del ds[int(tag, 16)]
        # Very large inline binaries are rare outside pixel data; a huge threshold keeps nested
        # ones (ECG WaveformData) inline, where a client can use them without another request.
        out: dict[str, Any] = ds.to_json_dict(bulk_data_threshold=2**31)
    for tag, vr in pixel_vrs.items():
        out[tag] = {"vr": vr, "BulkDataURI": BULK_PREFIX + tag}
    # JSON is UTF-8 whatever the file's character set was: the values are already decoded.
    out["00080005"] = dict(UTF8)
    return out


def absolute_bulk_uris(meta: dict[str, Any], instance_url: str) -> dict[str, Any]:
    """Copy of `meta` whose relative BulkDataURIs point under `instance_url`."""
    result = dict(meta)
    for tag, value in meta.items():
        uri = value.get("BulkDataURI") if isinstance(value, dict) else None
        if uri and uri.startswith(BULK_PREFIX):
            result[tag] = {**value, "BulkDataURI": f"{instance_url}/{uri}"}
    return result


def person_name(value: str) -> dict[str, str]:
    """'Yamada^Tarou=山田^太郎=やまだ^たろう' → the three PN component groups of DICOM JSON."""
    groups = value.split("=")
    names = ("Alphabetic", "Ideographic", "Phonetic")
    return {name: group for name, group in zip(names, groups, strict=False) if group}


def element(vr: str, value: Any) -> dict[str, Any]:
    """One DICOM JSON attribute; empty values are sent without "Value", as PS3.18 F.2.5 says."""
    if value in (None, "", []):
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [person_name(str(value))]}
    if isinstance(value, list | tuple):
        return {"vr": vr, "Value": list(value)}
    return {"vr": vr, "Value": [value]}
