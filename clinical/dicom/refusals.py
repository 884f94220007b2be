"""Why an object was refused, as the DICOM status both ingest protocols report.

The numbers are the standard's own: STOW-RS Failure Reason (PS3.18 Table 10.5.3-3 / I.2-2) and
C-STORE status (PS3.4 Table B.2-1, PS3.7 Annex C) share them, so one refusal means the same code
over HTTP and over DIMSE. Where the standard gives a range (A9xx, Cxxx) the low byte tells our
cases apart; the text says exactly what was wrong, for the person at the modality."""

from __future__ import annotations

import enum

from django.utils.translation import gettext_lazy as _


class Reason(enum.IntEnum):
    OUT_OF_RESOURCES = 0xA700  # Refused: Out of Resources
    MISSING_ATTRIBUTE = 0xA900  # Error: Data Set does not match SOP Class (Type 1 UID missing/invalid)
    PIXEL_MISMATCH = 0xA901  # Error: Data Set does not match SOP Class (Pixel Data vs its attributes)
    NOT_DICOM = 0xC000  # Error: Cannot understand (not a PS3.10 file)
    TRUNCATED = 0xC001  # Error: Cannot understand (data ends inside an element)
    INVALID_VALUE = 0xC002  # Error: Cannot understand (a value not valid for its VR)
    TRANSFER_SYNTAX_UNSUPPORTED = 0xC122  # Referenced Transfer Syntax not supported
    PROCESSING_FAILURE = 0x0110  # Processing failure (e.g. the study belongs to another patient)
    SOP_CLASS_NOT_SUPPORTED = 0x0122  # Refused: SOP Class not supported
    NOT_AUTHORIZED = 0x0124  # Refused: Not Authorized


LABELS = {
    Reason.OUT_OF_RESOURCES: _("保存領域が不足しています"),
    Reason.MISSING_ATTRIBUTE: _("必須の属性がありません"),
    Reason.PIXEL_MISMATCH: _("画素データが属性と一致しません"),
    Reason.NOT_DICOM: _("DICOM ファイルではありません"),
    Reason.TRUNCATED: _("データが途中で切れています"),
    Reason.INVALID_VALUE: _("属性値が不正です"),
    Reason.TRANSFER_SYNTAX_UNSUPPORTED: _("転送構文に対応していません"),
    Reason.PROCESSING_FAILURE: _("処理できませんでした"),
    Reason.SOP_CLASS_NOT_SUPPORTED: _("SOP クラスに対応していません"),
    Reason.NOT_AUTHORIZED: _("権限がありません"),
}


class Refused(Exception):
    """An object we will not store. `detail` names the attribute or the numbers involved."""

    def __init__(self, reason: Reason, detail: str, *, sop_class_uid: str = "", sop_instance_uid: str = "") -> None:
        super().__init__(f"{reason.name} (0x{reason.value:04X}): {detail}")
        self.reason = reason
        self.detail = detail
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid

    @property
    def label(self) -> str:
        return str(LABELS[self.reason])
