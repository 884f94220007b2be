"""Forms of the worklist and the review screen. The screen posts them through fetch to the API;
posted as plain forms (no script) they reach the HTML views, which call the same services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from reports.models import Priority, ReauthMethod, ReportStatus
from reports.presenting import KIND_LABELS
from reports.selectors import CORRECTED, WorklistFilters

MAX_CONFIRMED = 200


def confirmed_keys(data: QueryDict) -> list[str]:
    """Keys of the grounding flags the physician ticked; the service ignores keys it does not know."""
    return [str(k)[:100] for k in data.getlist("confirmed")][:MAX_CONFIRMED]


class WorklistForm(forms.Form):
    status = forms.ChoiceField(label=_("状態"), required=False, choices=[
        ("", _("未署名すべて")), (ReportStatus.DRAFT, ReportStatus.DRAFT.label),
        (ReportStatus.IN_REVIEW, ReportStatus.IN_REVIEW.label), (CORRECTED, _("要修正（データ訂正）"))])
    kind = forms.ChoiceField(label=_("種類"), required=False, choices=[("", _("すべて")), *KIND_LABELS.items()])
    priority = forms.TypedChoiceField(label=_("優先度"), required=False, coerce=int, empty_value=None,
                                      choices=[("", _("すべて")), *sorted(Priority.choices, reverse=True)])
    mine = forms.BooleanField(label=_("自分の担当のみ"), required=False)

    def filters(self) -> WorklistFilters:
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        return WorklistFilters(status=data.get("status") or "", kind=data.get("kind") or "",
                               priority=data.get("priority"), mine=bool(data.get("mine")))


class SaveForm(forms.Form):
    text = forms.CharField(label=_("所見"), required=False, strip=False, widget=forms.Textarea)
    base_number = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class ReauthFields(forms.Form):
    method = forms.ChoiceField(label=_("再認証の方法"), choices=ReauthMethod.choices, initial=ReauthMethod.PASSWORD,
                               widget=forms.RadioSelect)
    credential = forms.CharField(label=_("パスワードまたは認証コード"), required=False, strip=True,
                                 widget=forms.PasswordInput(attrs={"autocomplete": "off"}))


class SignForm(ReauthFields):
    revision_number = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
