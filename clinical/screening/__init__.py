"""Pure-Python screening rule engine: no Django, no ORM (a test enforces it).

    ruleset = load_ruleset("mhlw-2024")
    judgement = judge(VisitInput("V1", "M", 50, sbp=142), ruleset)
    judgement.outcomes        # {"sbp": "referral"}
    judgement.reasons         # ("収縮期血圧 142 mmHg ≥ 受診勧奨判定値 140 mmHg",)

Modules, one job each: ``visit`` (the input), ``model`` (rule-set types), ``ruleset``
(loading and validating ``rulesets/*.toml``), ``engine`` (compiled judging), ``egfr``,
``hierarchy`` (階層化), ``explain`` / ``judgement`` (lazy explanations), ``csvio`` (bulk CSV).
"""

from clinical.screening.engine import Screened, judge, judge_many, screen
from clinical.screening.explain import ItemResult
from clinical.screening.hierarchy import ACTIVE, EXCLUDED, INFORMATION, MOTIVATIONAL, HierarchyResult
from clinical.screening.judgement import Judgement
from clinical.screening.model import (
    GUIDANCE,
    NORMAL,
    REFERRAL,
    TREATED,
    UNGRADED,
    Band,
    ItemRule,
    RuleSet,
    RuleSetError,
    Threshold,
)
from clinical.screening.ruleset import available_rulesets, load_ruleset, load_ruleset_file
from clinical.screening.visit import VisitInput

__all__ = [
    "ACTIVE",
    "EXCLUDED",
    "GUIDANCE",
    "INFORMATION",
    "MOTIVATIONAL",
    "NORMAL",
    "REFERRAL",
    "TREATED",
    "UNGRADED",
    "Band",
    "HierarchyResult",
    "ItemResult",
    "ItemRule",
    "Judgement",
    "RuleSet",
    "RuleSetError",
    "Screened",
    "Threshold",
    "VisitInput",
    "available_rulesets",
    "judge",
    "judge_many",
    "load_ruleset",
    "load_ruleset_file",
    "screen",
]
