"""The three ways in (judge, judge_many, screen) agree, and bad visits are refused clearly."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from clinical.screening import Threshold, VisitInput, judge, judge_many, screen
from clinical.screening.model import GUIDANCE, NORMAL, REFERRAL

from .helpers import dock, mhlw, visit


def _random_visits(n: int, seed: int = 7) -> list[VisitInput]:
    rnd = random.Random(seed)

    def maybe(x: float) -> float | None:
        return x if rnd.random() < 0.8 else None

    return [
        VisitInput(
            visit_id=f"R{i}",
            sex=rnd.choice("MF"),
            age=rnd.randint(16, 90),
            fasting=rnd.choice([True, False, None]),
            waist_cm=maybe(round(rnd.uniform(60, 110), 1)),
            bmi=maybe(round(rnd.uniform(17, 35), 1)),
            sbp=maybe(rnd.randint(90, 190)),
            dbp=maybe(rnd.randint(50, 115)),
            tg=maybe(rnd.randint(20, 600)),
            hdl=maybe(rnd.randint(20, 100)),
            ldl=maybe(rnd.randint(40, 220)),
            non_hdl=maybe(rnd.randint(70, 250)),
            fbg=maybe(rnd.randint(70, 180)),
            rbg=maybe(rnd.randint(70, 220)),
            hba1c=maybe(round(rnd.uniform(4.5, 8.0), 1)),
            ast=maybe(rnd.randint(10, 90)),
            alt=maybe(rnd.randint(5, 100)),
            ggt=maybe(rnd.randint(10, 200)),
            egfr=maybe(round(rnd.uniform(20, 120), 1)) if rnd.random() < 0.5 else None,
            creatinine=maybe(round(rnd.uniform(0.4, 2.0), 2)),
            hb=maybe(round(rnd.uniform(9, 18), 1)),
            urine_protein=rnd.choice([None, "-", "+-", "1+", "2+", "3+", "4+"]),
            uric_acid=maybe(round(rnd.uniform(1.5, 10), 1)),
            med_bp=rnd.random() < 0.2,
            med_glucose=rnd.random() < 0.1,
            med_lipid=rnd.random() < 0.15,
            smoking=rnd.random() < 0.3,
        )
        for i in range(n)
    ]


def test_it_gives_the_same_answer_on_every_path() -> None:
    visits = _random_visits(500)
    for rs in (mhlw(), dock()):
        single = [judge(v, rs) for v in visits]
        many = judge_many(visits, rs)
        fast = list(screen(visits, rs))
        for a, b, s in zip(single, many, fast, strict=True):
            assert a.outcomes == b.outcomes == s.items
            assert a.follow_up == b.follow_up == s.follow_up
            assert a.hierarchy == b.hierarchy == s.hierarchy
            assert a.hierarchy == (a.hierarchy_detail.level if a.hierarchy_detail else None)
            assert len(a.items) == len(a.outcomes)


def test_it_agrees_with_a_slow_reference_judge_on_random_visits() -> None:
    rs = mhlw()
    for v in _random_visits(500, seed=11):
        j = judge(v, rs)
        for item in j.items:
            rule = rs.item(item.key)
            lr = rule.levels[v.sex]
            ref: Threshold | None = lr.referral
            expected = (
                REFERRAL
                if ref is not None and ref.crossed_by(item.value, rule.scale)
                else GUIDANCE
                if lr.guidance.crossed_by(item.value, rule.scale)
                else NORMAL
            )
            assert item.outcome == expected, (v.visit_id, item.key, item.value)
        assert j.follow_up == any(o == REFERRAL for o in j.outcomes.values())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (visit(sex="X", sbp=120), "sex 'X'"),
        (visit(fasting="yes", tg=100), "fasting 'yes'"),
        (visit(urine_protein="++"), "'\\+\\+' is not a canonical qualitative value"),
    ],
)
def test_it_refuses_malformed_visits_with_a_clear_message(bad: VisitInput, message: str) -> None:
    for fn in (lambda: judge(bad, mhlw()), lambda: judge_many([bad], mhlw()), lambda: list(screen([bad], mhlw()))):
        with pytest.raises(ValueError, match=message):
            fn()


def test_it_never_imports_django() -> None:
    code = (
        "import sys, clinical.screening, clinical.screening.csvio, clinical.intake.normalize;"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
