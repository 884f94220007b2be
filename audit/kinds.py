"""Typed event kinds and outcomes (IHE ATNA EventIdentification in spirit)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class EventKind(models.TextChoices):
    LOGIN = "login", _("ログイン")
    LOGIN_FAILED = "login_failed", _("ログイン失敗")
    LOGOUT = "logout", _("ログアウト")
    LOCKED_OUT = "locked_out", _("アカウントロック")
    SECOND_FACTOR = "second_factor", _("二要素認証")
    SECOND_FACTOR_ENROLLED = "second_factor_enrolled", _("二要素認証の登録")
    SESSION_EXPIRED = "session_expired", _("セッション期限切れ")
    CSRF_REJECTED = "csrf_rejected", _("CSRF検証失敗")
    ACCESS_DENIED = "access_denied", _("アクセス拒否")
    PHI_READ = "phi_read", _("個人情報の閲覧")
    PHI_SEARCH = "phi_search", _("個人情報の検索")
    CREATE = "create", _("作成")
    UPDATE = "update", _("更新")
    DELETE = "delete", _("削除")
    IMPORT = "import", _("取込")
    EXPORT = "export", _("出力")
    SIGN = "sign", _("署名")
    PERMISSION_CHANGE = "permission_change", _("権限変更")
    AUDIT_VERIFY = "audit_verify", _("監査ログ検証")


class Outcome(models.TextChoices):
    SUCCESS = "success", _("成功")
    FAILURE = "failure", _("失敗")
    DENIED = "denied", _("拒否")
