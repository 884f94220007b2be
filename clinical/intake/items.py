"""The catalogue of checkup items an import may carry: key, JLAC10 codes, Japanese names, the
units we accept and the range of values a human body can produce. Pure data, no Django.

Ranges are plausibility limits, not clinical thresholds: a value outside them is a typo or a unit
error (SBP 0 or 400, a negative enzyme), and importing it would put a wrong number in a report."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Kind = Literal["number", "qualitative", "flag"]


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    jlac10: tuple[str, ...]
    unit: str = ""
    units: tuple[str, ...] = ()  # accepted spellings (compared after NFKC + lower-casing)
    low: float | None = None
    high: float | None = None
    kind: Kind = "number"
    aliases: tuple[str, ...] = ()


ITEMS: tuple[Item, ...] = (
    Item("height_cm", "身長", ("9N001000000000001",), "cm", ("cm",), 80, 230, aliases=("身長",)),
    Item("weight_kg", "体重", ("9N006000000000001",), "kg", ("kg",), 15, 300, aliases=("体重",)),
    Item("bmi", "BMI", ("9N011000000000001",), "kg/m2", ("kg/m2", "kg/m²"), 10, 80, aliases=("bmi",)),
    Item("waist_cm", "腹囲", ("9N016160100000001",), "cm", ("cm",), 40, 200, aliases=("腹囲", "腹囲(実測)")),
    Item("sbp", "収縮期血圧", ("9A751000000000001", "9A752000000000001", "9A755000000000001"), "mmHg",
         ("mmhg",), 50, 300, aliases=("収縮期血圧", "最高血圧", "血圧(収縮期)", "血圧上")),
    Item("dbp", "拡張期血圧", ("9A761000000000001", "9A762000000000001", "9A765000000000001"), "mmHg",
         ("mmhg",), 20, 200, aliases=("拡張期血圧", "最低血圧", "血圧(拡張期)", "血圧下")),
    Item("tg", "中性脂肪", ("3F015000002327101", "3F015129902327101"), "mg/dL", ("mg/dl",), 5, 5000,
         aliases=("中性脂肪", "tg", "トリグリセライド")),
    Item("hdl", "HDLコレステロール", ("3F070000002327101",), "mg/dL", ("mg/dl",), 5, 250,
         aliases=("hdlコレステロール", "hdl-c", "hdl")),
    Item("ldl", "LDLコレステロール", ("3F077000002327101",), "mg/dL", ("mg/dl",), 5, 1000,
         aliases=("ldlコレステロール", "ldl-c", "ldl")),
    Item("non_hdl", "Non-HDLコレステロール", ("3F069000002391901",), "mg/dL", ("mg/dl",), 5, 1000,
         aliases=("non-hdlコレステロール", "nonhdlコレステロール", "non-hdl")),
    Item("fbg", "空腹時血糖", ("3D010000001926101", "3D010000002227101", "3D010000001927201",
                               "3D010000001999901"), "mg/dL", ("mg/dl",), 20, 1500, aliases=("空腹時血糖",)),
    Item("rbg", "随時血糖", ("3D010129901926101",), "mg/dL", ("mg/dl",), 20, 1500, aliases=("随時血糖",)),
    Item("hba1c", "HbA1c", ("3D046000001906202", "3D046000001920402", "3D046000001927102", "3D046000001999902"),
         "%", ("%",), 3, 20, aliases=("hba1c", "hba1c(ngsp)", "ヘモグロビンa1c")),
    Item("ast", "AST", ("3B035000002327201",), "U/L", ("u/l", "iu/l"), 0, 10000, aliases=("ast", "got", "ast(got)")),
    Item("alt", "ALT", ("3B045000002327201",), "U/L", ("u/l", "iu/l"), 0, 10000, aliases=("alt", "gpt", "alt(gpt)")),
    Item("ggt", "γ-GT", ("3B090000002327101",), "U/L", ("u/l", "iu/l"), 0, 10000,
         aliases=("γ-gt", "γ-gtp", "ggt", "γgtp")),
    Item("egfr", "eGFR", ("8A065000002391901",), "mL/min/1.73m2",
         ("ml/min/1.73m2", "ml/min/1.73m²", "ml/分/1.73m2", "ml/分/1.73m²"), 1, 200, aliases=("egfr",)),
    Item("creatinine", "クレアチニン", ("3C015000002327101",), "mg/dL", ("mg/dl",), 0.1, 30,
         aliases=("クレアチニン", "血清クレアチニン", "cr")),
    Item("uric_acid", "尿酸", ("3C020000002327101",), "mg/dL", ("mg/dl",), 0.5, 20, aliases=("尿酸", "ua")),
    Item("hb", "血色素量", ("2A030000001930101",), "g/dL", ("g/dl",), 2, 25,
         aliases=("血色素量", "ヘモグロビン", "hb")),
    Item("urine_protein", "尿蛋白", ("1A010000000191111", "1A010000000190111"), kind="qualitative",
         aliases=("尿蛋白", "尿たんぱく")),
    Item("med_bp", "服薬（血圧）", ("9N701000000000011",), kind="flag", aliases=("服薬1(血圧)", "血圧の薬")),
    Item("med_glucose", "服薬（血糖）", ("9N706000000000011",), kind="flag", aliases=("服薬2(血糖)", "血糖の薬")),
    Item("med_lipid", "服薬（脂質）", ("9N711000000000011",), kind="flag", aliases=("服薬3(脂質)", "脂質の薬")),
    Item("smoking", "喫煙", ("9N736000000000011",), kind="flag", aliases=("喫煙", "現在の喫煙")),
)

BY_KEY: dict[str, Item] = {item.key: item for item in ITEMS}


def fold(text: str) -> str:
    """How headers and units are compared: NFKC (全角→半角), lower case, no spaces."""
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


_LOOKUP: dict[str, Item] = {}
for _item in ITEMS:
    for _name in (_item.key, _item.label, *_item.jlac10, *_item.aliases):
        _LOOKUP.setdefault(fold(_name), _item)


def split_header(header: str) -> tuple[str, str | None]:
    """'HbA1c（%）' → ('HbA1c', '%'); a unit may be given in (full-width) parentheses."""
    text = unicodedata.normalize("NFKC", header).strip()
    if text.endswith(")") and "(" in text:
        name, _, unit = text[:-1].rpartition("(")
        if name.strip() and fold(name) in _LOOKUP:
            return name.strip(), unit.strip()
    return text, None


def find_item(name: str) -> Item | None:
    """By item key, JLAC10 code or Japanese name."""
    return _LOOKUP.get(fold(name))


def unit_ok(item: Item, unit: str) -> bool:
    return fold(unit) in {fold(u) for u in item.units}
