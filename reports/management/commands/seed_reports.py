"""Demo: sign some of the template drafts as the demo physicians would (one unedited, one edited,
one amended per facility), so the letter, the FHIR export and the AI quality dashboard have data on
first start. The rest stay in the physicians' worklists. Idempotent: does nothing once any report
is signed. Embedded demo only (uses the demo password)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.context import RequestContext, acting, new_request_id
from clinical.demo.seed import DEMO_PASSWORD
from clinical.models import Facility, Membership, Role
from reports import services
from reports.models import Report, ReportStatus, SignOff


class Command(BaseCommand):
    help = "デモ用に、テンプレート下書きの一部を医師として署名します（結果報告書・品質ダッシュボード用）"

    def handle(self, *args: Any, **options: Any) -> None:
        if SignOff.objects.exists():
            self.stdout.write("signed demo reports already exist")
            return
        signed = 0
        for facility in Facility.objects.order_by("code"):
            member = (Membership.objects.filter(facility=facility, role=Role.PHYSICIAN).select_related("user")
                      .order_by("user__username").first())
            if member is None:
                continue
            physician = member.user
            drafts = list(Report.objects.filter(facility=facility, status=ReportStatus.DRAFT).order_by("pk")[:3])
            with acting(RequestContext(request_id=new_request_id(), channel="command", user_id=physician.pk,
                                        username=physician.get_username())):
                for n, report in enumerate(drafts):
                    head = report.revisions.order_by("-number")[0]
                    number = head.number
                    if n >= 1:  # the physician adds advice, as they usually do
                        number = services.revision_save(
                            report=report, actor=physician, base_number=head.number,
                            text=head.text + "\n生活習慣（減塩・運動）の見直しをお勧めします。").number
                    confirmed = [f"{i.get('start')}:{i.get('text')}" for i in
                                 report.revisions.get(number=number).grounding.get("issues", [])]
                    services.report_sign(report=report, actor=physician, revision_number=number, method="password",
                                         credential=DEMO_PASSWORD, confirmed=confirmed)
                    signed += 1
                    if n == 2:
                        text = report.revisions.get(number=number).text + "\n（追記）3か月後に再検査してください。"
                        services.report_amend(report=report, actor=physician, text=text,
                                              reason="再検査の時期を追記", method="password",
                                              credential=DEMO_PASSWORD)
        self.stdout.write(f"signed {signed} demo reports")
