"""Forms of the administration screens. They check input and say what is wrong with it; the
services decide what is allowed."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clinical.models import Facility, Role, User
from clinical.screening import RuleSet
from clinical.services_rulesets import MAX_REASON


class FacilityChoiceMixin:
    """A `facility` field limited to the facilities the administrator administers; preselected
    when there is only one."""

    fields: dict[str, forms.Field]

    def limit_facilities(self, facility_ids: list[int]) -> None:
        facilities = Facility.objects.filter(pk__in=facility_ids).order_by("code")
        field = self.fields["facility"]
        field.queryset = facilities  # type: ignore[attr-defined]
        if len(facility_ids) == 1:
            field.initial = facility_ids[0]
            field.empty_label = None  # type: ignore[attr-defined]


class UserCreateForm(FacilityChoiceMixin, forms.Form):
    username = forms.CharField(label=_("利用者ID"), max_length=150, validators=[UnicodeUsernameValidator()],
                               help_text=_("ログインに使います。英数字と @ . + - _ が使えます。"),
                               widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
                               error_messages={"required": _("利用者IDを入力してください。")})
    display_name = forms.CharField(label=_("氏名（漢字）"), max_length=100,
                                   error_messages={"required": _("氏名を入力してください。")})
    display_name_kana = forms.CharField(label=_("氏名（カナ）"), max_length=100, required=False)
    email = forms.EmailField(label=_("メールアドレス"), required=False)
    facility = forms.ModelChoiceField(queryset=Facility.objects.none(), label=_("施設"))
    role = forms.ChoiceField(label=_("役割"), choices=Role.choices)
    password1 = forms.CharField(label=_("初期パスワード"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                error_messages={"required": _("初期パスワードを入力してください。")})
    password2 = forms.CharField(label=_("初期パスワード（確認）"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                error_messages={"required": _("確認のため、もう一度入力してください。")})

    def __init__(self, *args: Any, facility_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_facilities(facility_ids)
        self.fields["password1"].help_text = password_validators_help_text_html()

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        # Case-insensitive: "Tanaka" and "tanaka" as two accounts is a mistake waiting to happen.
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError(_("この利用者IDはすでに使われています。"), code="duplicate")
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("確認用のパスワードが一致しません。"))
        elif p1:
            # The configured validators (AUTH_PASSWORD_VALIDATORS), against what the account will hold;
            # a new account has no second factor yet, so the long minimum applies.
            candidate = User(username=data.get("username", ""), display_name=data.get("display_name", ""),
                             email=data.get("email", ""))
            try:
                validate_password(p1, candidate)
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


class MembershipForm(FacilityChoiceMixin, forms.Form):
    facility = forms.ModelChoiceField(queryset=Facility.objects.none(), label=_("施設"))
    role = forms.ChoiceField(label=_("役割"), choices=Role.choices)

    def __init__(self, *args: Any, facility_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_facilities(facility_ids)


class AddMemberForm(forms.Form):
    """Give an existing account (from another facility, say) a role here."""

    username = forms.CharField(label=_("利用者ID"), max_length=150)
    role = forms.ChoiceField(label=_("役割"), choices=Role.choices)

    def clean_username(self) -> User:
        username = self.cleaned_data["username"].strip()
        user = User.objects.filter(username__iexact=username).first()
        if user is None:
            raise ValidationError(_("利用者ID「%(username)s」は登録されていません。"), code="unknown",
                                  params={"username": username})
        return user


class FacilityForm(forms.Form):
    name = forms.CharField(label=_("施設名"), max_length=200,
                           error_messages={"required": _("施設名を入力してください。")})


class FacilityCreateForm(forms.Form):
    code = forms.RegexField(label=_("施設コード"), max_length=20, regex=r"^[0-9A-Za-z_-]+$",
                            error_messages={"invalid": _("施設コードは半角英数字・ハイフン・下線で入力してください。")})
    name = forms.CharField(label=_("施設名"), max_length=200)

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"]
        if Facility.objects.filter(code__iexact=code).exists():
            raise ValidationError(_("この施設コードはすでに使われています。"), code="duplicate")
        return code


class RuleSetChoiceForm(forms.Form):
    """The rule sets in force for one course: one form per course on the page, prefixed by the course."""

    rulesets = forms.MultipleChoiceField(label=_("判定基準"), widget=forms.CheckboxSelectMultiple,
                                         error_messages={"required": _("判定基準を1つ以上選んでください。")})
    reason = forms.CharField(label=_("変更の理由"), max_length=MAX_REASON, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("変更の理由を入力してください。")})

    def __init__(self, *args: Any, choices: list[RuleSet], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rulesets"].choices = [  # type: ignore[attr-defined]
            (r.id, f"{r.title}（{r.id} {r.version}）") for r in choices]
