"""What a physician changed in a model's draft, sentence by sentence and character by character.

Used twice: the review screen shows which sentences the model wrote, which the physician edited and
which were added or deleted; the quality data stored at sign-off counts them and the character-level
edit distance. Pure functions, no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from rapidfuzz.distance import Levenshtein

__all__ = ["SentenceChange", "edit_distance", "sentence_diff", "split_sentences", "summarise"]

# A sentence ends at 。！？ (full- or half-width ! ?) or at a line break; the terminator stays with it.
_SENTENCE = re.compile(r"[^。！？!?\n]*(?:[。！？!?]+|\n|$)")

Status = Literal["kept", "edited", "deleted", "added"]


@dataclass(frozen=True)
class SentenceChange:
    status: Status
    before: str  # the model's sentence ("" when added)
    after: str  # the physician's sentence ("" when deleted)


def split_sentences(text: str) -> list[str]:
    """Non-empty sentences with their terminators, whitespace trimmed; list markers stay attached."""
    out = []
    for match in _SENTENCE.finditer(text.replace("\r\n", "\n")):
        sentence = match.group(0).strip()
        if sentence:
            out.append(sentence)
    return out


def edit_distance(before: str, after: str) -> int:
    """Character-level Levenshtein distance (insertions, deletions, substitutions cost 1)."""
    return int(Levenshtein.distance(before, after))


def _similar(a: str, b: str) -> bool:
    # Two sentences are "the same sentence, edited" when at least half of the longer one survives;
    # below that the physician replaced it, which reads better as deleted + added.
    return Levenshtein.normalized_similarity(a, b) >= 0.5


def sentence_diff(before: str, after: str) -> list[SentenceChange]:
    """Align the two texts' sentences (difflib on whole sentences, then pair similar sentences
    inside each replaced block) and label each one kept, edited, deleted or added, in reading order."""
    a, b = split_sentences(before), split_sentences(after)
    changes: list[SentenceChange] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            changes.extend(SentenceChange("kept", s, s) for s in a[i1:i2])
        elif op == "delete":
            changes.extend(SentenceChange("deleted", s, "") for s in a[i1:i2])
        elif op == "insert":
            changes.extend(SentenceChange("added", "", s) for s in b[j1:j2])
        else:
            changes.extend(_pair_block(a[i1:i2], b[j1:j2]))
    return changes


def _pair_block(old: list[str], new: list[str]) -> list[SentenceChange]:
    out: list[SentenceChange] = []
    j = 0
    for sentence in old:
        # The next new sentence similar to this one (skipping over added ones) is its edit.
        match = next((k for k in range(j, len(new)) if _similar(sentence, new[k])), None)
        if match is None:
            out.append(SentenceChange("deleted", sentence, ""))
            continue
        out.extend(SentenceChange("added", "", s) for s in new[j:match])
        out.append(SentenceChange("edited", sentence, new[match]))
        j = match + 1
    out.extend(SentenceChange("added", "", s) for s in new[j:])
    return out


def summarise(changes: list[SentenceChange]) -> dict[str, int]:
    counts = {"kept": 0, "edited": 0, "deleted": 0, "added": 0}
    for change in changes:
        counts[change.status] += 1
    return counts
