"""The rule-set data files: sources named, unverified values marked, broken files refused."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from clinical.screening import RuleSetError, available_rulesets, load_ruleset, load_ruleset_file
from clinical.screening.ruleset import RULESET_DIR, parse_ruleset

from .helpers import dock, mhlw


def _data(name: str) -> dict[str, Any]:
    with (RULESET_DIR / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_it_ships_both_rule_sets() -> None:
    assert available_rulesets() == ("mhlw-2024", "ningen-dock")


def test_it_names_the_source_document_and_edition_of_each_rule_set() -> None:
    rs = mhlw()
    assert "標準的な健診・保健指導プログラム（令和6年度版）" in rs.source
    assert "別紙5" in rs.source
    assert "令和6年度版" in rs.edition and "第4期" in rs.edition
    assert rs.source_url == "https://www.mhlw.go.jp/content/10900000/001231392.pdf"
    nd = dock()
    assert "日本人間ドック・予防医療学会" in nd.source
    assert nd.edition == "2022年4月改定"
    for r in (rs, nd):
        assert r.id in r.citation and r.version in r.citation


def test_it_marks_hb_and_urine_protein_unverified_in_mhlw() -> None:
    rs = mhlw()
    assert set(rs.unverified_rules) == {"mhlw-2024/hb", "mhlw-2024/urine_protein"}
    assert rs.verified is False  # the file as a whole cannot claim verification


def test_it_marks_every_ningen_dock_rule_unverified() -> None:
    nd = dock()
    assert nd.verified is False
    assert all(not r.verified for r in nd.items)
    assert len(nd.unverified_rules) == len(nd.items)


def test_it_states_verified_explicitly_on_every_rule_in_the_files() -> None:
    for name in available_rulesets():
        data = _data(name)
        assert isinstance(data["ruleset"]["verified"], bool)
        for item in data["item"]:
            assert isinstance(item["verified"], bool), (name, item["key"])
    assert [i["key"] for i in _data("mhlw-2024")["item"] if not i["verified"]] == ["hb", "urine_protein"]
    assert all(i["verified"] is False for i in _data("ningen-dock")["item"])


def test_it_leaves_out_the_ningen_dock_items_the_standards_say_to_leave_out() -> None:
    fields = {r.field for r in dock().items}
    assert fields == {
        "sbp", "dbp", "hba1c", "fbg", "ast", "alt", "ggt", "ldl", "non_hdl", "tg", "uric_acid",
        "urine_protein",
    }  # fmt: skip
    assert not fields & {"hdl", "bmi", "waist_cm", "hb"}


def test_it_gives_hdl_no_referral_value_in_the_fourth_period() -> None:
    hdl = mhlw().item("hdl")
    assert hdl.levels["M"].referral is None and hdl.levels["F"].referral is None


def test_it_keeps_jlac10_codes_well_formed_and_partial_codes_apart() -> None:
    for rs in (mhlw(), dock()):
        for r in rs.items:
            assert r.jlac10 and all(len(c) == 17 for c in r.jlac10)
    assert mhlw().item("sbp").jlac10_abbreviated == ("9A752…", "9A755…")


def test_it_caches_loaded_rule_sets() -> None:
    assert load_ruleset("mhlw-2024") is load_ruleset("mhlw-2024")


@pytest.mark.parametrize("name", ["nope", "../etc/passwd", "MHLW"])
def test_it_refuses_unknown_or_unsafe_rule_set_names(name: str) -> None:
    with pytest.raises(RuleSetError):
        load_ruleset(name)


# ------------------------------------------------------------ broken copies are refused


def _broken(mutate: Any) -> dict[str, Any]:
    data = _data("mhlw-2024")
    mutate(data)
    return data


def _item(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(i for i in data["item"] if i["key"] == key)


BROKEN = {
    "a misspelt key": (lambda d: _item(d, "sbp").update(referal=_item(d, "sbp").pop("referral")), "unknown keys"),
    "a missing verified flag": (lambda d: _item(d, "sbp").pop("verified"), "verified"),
    "file verified with unverified rules": (lambda d: d["ruleset"].update(verified=True), "verified = true"),
    "referral milder than guidance": (
        lambda d: _item(d, "sbp").update(referral={"op": ">=", "value": 120}),
        "less severe",
    ),
    "directions that disagree": (
        lambda d: _item(d, "egfr").update(referral={"op": ">=", "value": 90}),
        "different ways",
    ),
    "an unknown operator": (lambda d: _item(d, "sbp").update(guidance={"op": "=>", "value": 130}), "op"),
    "a non-numeric threshold": (lambda d: _item(d, "sbp").update(guidance={"op": ">=", "value": "130"}), "finite"),
    "an unknown field": (lambda d: _item(d, "sbp").update(field="systolic"), "field"),
    "a malformed JLAC10 code": (lambda d: _item(d, "sbp").update(jlac10=["9A751"]), "JLAC10"),
    "two rules on one field": (lambda d: _item(d, "tg_random").update(fasting=True), "both judge"),
    "a duplicate key": (lambda d: d["item"].append(dict(_item(d, "sbp"))), "duplicate"),
    "a risk naming no item": (lambda d: d["hierarchy"]["risk"][0]["items"].append("pulse"), "unknown item"),
    "an off-scale qualitative value": (
        lambda d: _item(d, "urine_protein").update(guidance={"op": ">=", "value": "±"}),
        "scale",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_it_refuses_a_broken_levels_file(case: str) -> None:
    mutate, message = BROKEN[case]
    with pytest.raises(RuleSetError, match=message):
        parse_ruleset(_broken(mutate), where="broken.toml")


def test_it_refuses_overlapping_or_misordered_bands() -> None:
    data = _data("ningen-dock")
    sbp = next(i for i in data["item"] if i["key"] == "sbp")
    sbp["bands"][1]["ge"] = 125  # B now starts inside A
    with pytest.raises(RuleSetError, match="overlap"):
        parse_ruleset(data, where="broken.toml")


def test_it_refuses_a_grade_e_band_because_e_comes_from_medication() -> None:
    data = _data("ningen-dock")
    data["item"][0]["bands"][0]["grade"] = "E"
    with pytest.raises(RuleSetError, match="A–D"):
        parse_ruleset(data, where="broken.toml")


def test_it_reports_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[ruleset\n", encoding="utf-8")
    with pytest.raises(RuleSetError, match=r"bad\.toml"):
        load_ruleset_file(bad)
