"""Which rule sets judge a facility's visits, per checkup course. No row for a course means the
shipped default (`clinical.judging.DEFAULT_RULESETS`), so a new facility judges like every other."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clinical.models.checkup import Course
from clinical.models.identity import Facility


class FacilityRuleSet(models.Model):
    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="rulesets_in_force")
    course = models.CharField(_("コース"), max_length=10, choices=Course.choices)
    # Rule-set ids (file stems under clinical/screening/rulesets/). The version in force is the one the
    # shipped file declares; each ScreeningResult keeps the version it was judged with.
    rulesets = models.JSONField(_("判定基準"), default=list)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    changed_at = models.DateTimeField(_("変更日時"), auto_now=True)

    class Meta:
        verbose_name = _("施設の判定基準")
        verbose_name_plural = _("施設の判定基準")
        constraints = [
            models.UniqueConstraint(fields=["facility", "course"], name="facilityruleset_unique_course"),
            models.CheckConstraint(condition=models.Q(course__in=[c.value for c in Course]),
                                   name="facilityruleset_course_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.facility} {self.get_course_display()}: {', '.join(self.rulesets)}"
