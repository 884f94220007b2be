"""The result of judging one visit: cheap to create, explains itself on demand."""

from __future__ import annotations

from clinical.screening.explain import ItemResult, explain_item
from clinical.screening.hierarchy import HierarchyResult, explain_hierarchy
from clinical.screening.model import RuleSet
from clinical.screening.visit import VisitInput


class Judgement:
    """One visit judged against one rule set.

    ``outcomes`` (output key → outcome), ``follow_up`` and ``hierarchy`` are ready at once;
    ``items``, ``reasons`` and ``hierarchy_detail`` are built the first time they are read.
    """

    __slots__ = ("_bits", "_items", "_results", "egfr_computed", "follow_up", "hierarchy", "ruleset", "visit")

    def __init__(
        self,
        visit: VisitInput,
        ruleset: RuleSet,
        results: list[tuple[int, str]],
        follow_up: bool,
        risk_bits: int,
        hierarchy: str | None,
        egfr_computed: float | None,
    ) -> None:
        self.visit = visit
        self.ruleset = ruleset
        self._results = results
        self.follow_up = follow_up
        self._bits = risk_bits
        self.hierarchy = hierarchy  # active / motivational / information / excluded; None: no 階層化
        self.egfr_computed = egfr_computed  # eGFR computed from creatinine, when it was
        self._items: tuple[ItemResult, ...] | None = None

    @property
    def outcomes(self) -> dict[str, str]:
        """Output key (``tg``, ``egfr``, …) → outcome, for the measured items only."""
        items = self.ruleset.items
        return {items[no].field: o for no, o in self._results}

    @property
    def items(self) -> tuple[ItemResult, ...]:
        if self._items is None:
            rules = self.ruleset.items
            self._items = tuple(
                explain_item(self.ruleset, rules[no], self.visit, o, self.egfr_computed) for no, o in self._results
            )
        return self._items

    def item(self, field: str) -> ItemResult:
        for result in self.items:
            if result.field == field or result.key == field:
                return result
        raise KeyError(field)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the visit is flagged for follow-up (empty when it is not)."""
        follow = self.ruleset.follow_up
        if self._items is not None:
            return tuple(r.reason for r in self._items if r.outcome in follow)
        # Explain only the flagged items: an import of 110,000 visits asks this for every flagged visit.
        rules = self.ruleset.items
        return tuple(
            explain_item(self.ruleset, rules[no], self.visit, o, self.egfr_computed).reason
            for no, o in self._results
            if o in follow
        )

    @property
    def hierarchy_detail(self) -> HierarchyResult | None:
        rule = self.ruleset.hierarchy
        return explain_hierarchy(rule, self.visit, self._bits) if rule is not None else None

    def __repr__(self) -> str:
        return (
            f"Judgement({self.visit.visit_id!r}, {self.ruleset.id!r}, {self.outcomes!r}, "
            f"follow_up={self.follow_up}, hierarchy={self.hierarchy!r})"
        )
