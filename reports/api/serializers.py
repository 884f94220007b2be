"""Explicit input and output serializers of the reports API (house rule 6). Outputs are built from
plain dicts (reports/api/shapes.py), so what the API answers is written down in one place."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reports.models import ReauthMethod
from reports.services import MAX_TEXT

MAX_CONFIRMED = 200


class IssueSourceOut(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="照合先の項目")
    value = serializers.CharField(help_text="原データの値")


class IssueOut(serializers.Serializer[Any]):
    key = serializers.CharField(help_text="署名時に confirmed で送る識別子（\"開始位置:数値\"）")
    text = serializers.CharField()
    unit = serializers.CharField(allow_blank=True)
    start = serializers.IntegerField(help_text="本文中の開始位置（文字）")
    end = serializers.IntegerField()
    reason = serializers.CharField()
    candidates = serializers.ListField(child=serializers.CharField())
    sources = IssueSourceOut(many=True)


class RevisionOut(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    kind = serializers.CharField()
    kind_label = serializers.CharField()
    text = serializers.CharField()
    author = serializers.CharField()
    created_at = serializers.DateTimeField()
    amendment_reason = serializers.CharField(allow_blank=True)
    issues = IssueOut(many=True, help_text="原データと一致しない数値（修正または確認が必要）")


class SignOffOut(serializers.Serializer[Any]):
    revision_number = serializers.IntegerField()
    physician = serializers.CharField()
    physician_name = serializers.CharField()
    signed_at = serializers.DateTimeField()
    method = serializers.CharField()
    content_sha256 = serializers.CharField()
    amends = serializers.BooleanField(help_text="署名後の修正による署名か")
    reason = serializers.CharField(allow_blank=True)


class PatientRef(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    mrn = serializers.CharField()
    name = serializers.CharField()


class ReportOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    kind_label = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    priority = serializers.IntegerField()
    priority_label = serializers.CharField()
    facility = serializers.CharField(help_text="施設コード")
    patient = PatientRef(allow_null=True)
    visit_id = serializers.IntegerField(allow_null=True)
    study_id = serializers.IntegerField(allow_null=True)
    assigned_physician = serializers.CharField(allow_null=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    can_edit = serializers.BooleanField()
    can_sign = serializers.BooleanField()
    can_amend = serializers.BooleanField()
    head = RevisionOut()
    signoff = SignOffOut(allow_null=True, help_text="最新の署名")


class ChangeOut(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["kept", "edited", "deleted", "added"])
    status_label = serializers.CharField()
    before = serializers.CharField(allow_blank=True, help_text="AIの下書きの文")
    after = serializers.CharField(allow_blank=True, help_text="医師の本文の文")


class SavedOut(serializers.Serializer[Any]):
    report_status = serializers.CharField()
    report_status_label = serializers.CharField()
    created = serializers.BooleanField(help_text="false: 本文が変わらず新しい版は作られなかった")
    revision = RevisionOut()
    changes = ChangeOut(many=True, help_text="AIの下書きとの文ごとの比較")


class CurrentOut(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    text = serializers.CharField()
    author = serializers.CharField()
    created_at = serializers.DateTimeField()


class ConflictOut(serializers.Serializer[Any]):
    error = serializers.CharField()
    code = serializers.CharField()
    current = CurrentOut(help_text="先に保存された最新の版")
    yours = serializers.CharField(allow_blank=True, help_text="保存されなかったあなたの本文")


class ErrorOut(serializers.Serializer[Any]):
    error = serializers.CharField()
    code = serializers.CharField()
    unconfirmed = IssueOut(many=True, required=False, help_text="未確認の数値（署名を止めた理由）")


class RevisionIn(serializers.Serializer[Any]):
    # Blank and over-long texts reach the service, which refuses them with its own message.
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=MAX_TEXT * 2)
    base_number = serializers.IntegerField(min_value=1, help_text="編集画面が表示していた版")
    autosave = serializers.BooleanField(default=False)


class ReauthIn(serializers.Serializer[Any]):
    method = serializers.ChoiceField(choices=ReauthMethod.choices)
    credential = serializers.CharField(allow_blank=True, max_length=256, help_text="パスワードまたは6桁の認証コード")
    confirmed = serializers.ListField(child=serializers.CharField(max_length=100), max_length=MAX_CONFIRMED,
                                      required=False, default=list,
                                      help_text="確認済みにした数値の key（IssueOut.key）")


class SignIn(ReauthIn):
    revision_number = serializers.IntegerField(min_value=1, help_text="署名する版（画面に表示していた版）")


class AmendIn(ReauthIn):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=MAX_TEXT * 2)
    reason = serializers.CharField(allow_blank=True, max_length=1000)
