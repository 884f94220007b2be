"""Sentence-level and character-level differences between a model's draft and the signed text."""

from __future__ import annotations

from ml.textdiff import edit_distance, sentence_diff, split_sentences, summarise


def test_it_splits_japanese_sentences_at_full_stops_and_line_breaks() -> None:
    assert split_sentences("所見:\n・血圧が高い。要注意！\n\n印象: 正常範囲") == [
        "所見:", "・血圧が高い。", "要注意！", "印象: 正常範囲"]


def test_it_counts_character_edits_in_kanji_as_one_each() -> None:
    assert edit_distance("収縮期血圧152", "収縮期血圧132") == 1
    assert edit_distance("", "減塩") == 2 and edit_distance("同じ", "同じ") == 0


def test_it_labels_kept_edited_deleted_and_added_sentences_in_reading_order() -> None:
    before = "血圧が高値です。HbA1c 6.3 %です。心電図は正常です。"
    after = "血圧が高値です。HbA1c 6.8 %です。減塩を勧めます。"
    changes = sentence_diff(before, after)
    assert [(c.status, c.before, c.after) for c in changes] == [
        ("kept", "血圧が高値です。", "血圧が高値です。"),
        ("edited", "HbA1c 6.3 %です。", "HbA1c 6.8 %です。"),
        ("deleted", "心電図は正常です。", ""),
        ("added", "", "減塩を勧めます。"),
    ]
    assert summarise(changes) == {"kept": 1, "edited": 1, "deleted": 1, "added": 1}


def test_it_treats_a_rewritten_sentence_as_deleted_and_added() -> None:
    changes = sentence_diff("異常なし。", "右下肺野に結節影があり精密検査が必要です。")
    assert [c.status for c in changes] == ["deleted", "added"]


def test_an_unchanged_text_is_all_kept() -> None:
    text = "所見:\n・異常なし。\n印象: 正常。"
    assert summarise(sentence_diff(text, text)) == {"kept": 3, "edited": 0, "deleted": 0, "added": 0}
