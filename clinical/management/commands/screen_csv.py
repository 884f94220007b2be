"""``manage.py screen_csv PATH --ruleset mhlw-2024``: judge a CSV of visits, print JSON lines.

Thin on purpose: all the work is in :mod:`clinical.screening.csvio`, which knows no Django.
Nothing is written to any database.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinical.screening.csvio import HEADER, CsvInputError, screen_csv
from clinical.screening.model import RuleSetError
from clinical.screening.ruleset import available_rulesets


class Command(BaseCommand):
    help = (
        "健診データの CSV を判定し、受診者ごとに 1 行の JSON を出力します（データベースには書き込みません）。"
        f" ヘッダー: {','.join(HEADER)}"
    )
    # A pure computation over a file: no models, so the system checks add nothing but start-up time.
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="CSV file (UTF-8, with the header above)")
        parser.add_argument(
            "--ruleset",
            default="mhlw-2024",
            help=f"rule set id ({', '.join(available_rulesets())}); default mhlw-2024",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # Chunks end in "\n", so OutputWrapper adds no line ending of its own.
            screen_csv(options["path"], options["ruleset"], self.stdout)
        except (CsvInputError, RuleSetError) as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"{options['path']}: 読み込めません: {exc.strerror or exc}") from exc
