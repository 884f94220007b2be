"""Incremental detokenization: turn a growing list of token ids into text deltas.

Byte-level BPE tokenizers split one Japanese character (3 UTF-8 bytes) over several tokens, and
SentencePiece-style ones change a token's leading space with its left context, so decoding each
token alone gives mojibake or lost spaces. We decode a short window that starts a few tokens back
and only release text once it no longer ends in a half-built character (U+FFFD) — the scheme
text-generation-inference and vLLM use.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Decoder(Protocol):
    def decode(self, token_ids: Any, skip_special_tokens: bool = ..., **kwargs: Any) -> Any: ...


REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Feed token ids one by one with `push`; each call returns the new, complete text (maybe "")."""

    __slots__ = ("_prefix", "_read", "_tokenizer", "ids")

    def __init__(self, tokenizer: _Decoder) -> None:
        self._tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the decoding window (gives the left context)
        self._read = 0  # ids before this index have been released as text

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (a trailing incomplete character comes out as U+FFFD)."""
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return after[len(before) :] if len(after) > len(before) else ""

    def text(self) -> str:
        """The whole text, decoded at once (the authoritative result)."""
        return self._decode(self.ids)
