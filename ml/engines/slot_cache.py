"""A KV cache of independent rows ("slots") for continuous batching, built on HF's static cache layers.

HF's `StaticCache` writes every row of a batch at one shared position, which only fits requests
that start together. Here each row is its own sequence: it keeps its tokens at cache index ==
position (as it would alone), is written at its own position (`write_pos[row]`) during decode, and
is refilled from a prefill when a new request takes the slot. The backing tensors are allocated
once and never move, so a compiled decode step can be captured as a CUDA graph.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers.cache_utils import Cache, StaticLayer


class SlotLayer(StaticLayer):
    """One layer's keys/values `[max_batch, kv_heads, max_len, head_dim]`; decode writes row r at `write_pos[r]`."""

    def __init__(self, max_cache_len: int, write_pos: torch.Tensor) -> None:
        super().__init__(max_cache_len=max_cache_len)
        self.write_pos = write_pos
        # Attention reads cache cells [0, window). Eager decoding narrows it to the longest running row;
        # a compiled step keeps the whole length (one shape).
        self.window = max_cache_len

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, heads, q_len, _ = key_states.shape
        if q_len != 1:
            raise RuntimeError("slot cache layers take one token per row (prefill goes through a dynamic cache)")
        keys, values = cast(torch.Tensor, self.keys)[:b], cast(torch.Tensor, self.values)[:b]
        index = self.write_pos[:b].view(b, 1, 1, 1)
        keys.scatter_(2, index.expand(b, heads, 1, keys.shape[-1]), key_states)
        values.scatter_(2, index.expand(b, heads, 1, values.shape[-1]), value_states)
        if self.window < self.max_cache_len:
            return keys[:, :, : self.window], values[:, :, : self.window]
        return keys, values

    def get_seq_length(self) -> int:
        # Rows have different lengths; callers always pass explicit position ids and a 4D mask.
        return 0


class SlotKVCache:
    """The slot layers of a model plus the copy from a (left-padded) prefill into chosen slots."""

    def __init__(
        self,
        config: Any,
        max_batch_size: int,
        max_len: int,
        write_pos: torch.Tensor,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        text = config.get_text_config(decoder=True)
        heads = text.num_attention_heads
        kv_heads = getattr(text, "num_key_value_heads", None) or heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        self.layers: list[SlotLayer] = []
        for _ in range(text.num_hidden_layers):
            layer = SlotLayer(max_len, write_pos)
            # Allocate now (not on first use): the memory is claimed when the worker starts.
            dummy = torch.empty((max_batch_size, kv_heads, 1, head_dim), dtype=dtype, device=device)
            layer.lazy_initialization(dummy, dummy)
            self.layers.append(layer)
        self.cache = Cache(layers=cast(list[Any], self.layers))
        self.device = device
        self.nbytes = 2 * len(self.layers) * max_batch_size * kv_heads * max_len * head_dim * dtype.itemsize

    def set_window(self, window: int) -> None:
        for layer in self.layers:
            layer.window = window

    def adopt_prefill(self, prefill_cache: Any, lengths: list[int], slots: list[int], width: int) -> None:
        """Copy row j of a left-padded prefill (`width` wide, `lengths[j]` real tokens) into `slots[j]`,
        dropping the padding so that the row's token i lands at cache index i."""
        rows: list[int] = []
        src: list[int] = []
        dst: list[int] = []
        dst_slots: list[int] = []
        for j, (length, slot) in enumerate(zip(lengths, slots, strict=True)):
            rows += [j] * length
            src += range(width - length, width)
            dst += range(length)
            dst_slots += [slot] * length
        rows_t, src_t, dst_t, slots_t = (torch.tensor(x, device=self.device) for x in (rows, src, dst, dst_slots))
        for layer, target in zip(prefill_cache.layers, self.layers, strict=True):
            keys, values = cast(torch.Tensor, target.keys), cast(torch.Tensor, target.values)
            keys[slots_t, :, dst_t] = layer.keys[rows_t, :, src_t].to(keys.dtype)
            values[slots_t, :, dst_t] = layer.values[rows_t, :, src_t].to(values.dtype)
