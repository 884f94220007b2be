from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ml.tiny import NUM_IMAGE_TOKENS, build_tiny_checkpoint
from tests.ml.conftest import png

JAPANESE_JSON = (
    '{"findings":[{"text":"右上肺野に結節影を認めます。","severity":"mild","confidence":0.8}],'
    '"impression":"HbA1c 6.8 %"}\n'
)


def test_it_round_trips_a_llava_checkpoint_through_the_auto_classes(tiny_llava: Path) -> None:
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava, local_files_only=True)
    assert type(processor).__name__ == "LlavaProcessor"
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 500_000  # tiny: ≈0.7 MB on disk

    import io

    messages = [{"role": "user", "content": [
        {"type": "image", "image": Image.open(io.BytesIO(png((200, 30, 30))))},
        {"type": "text", "text": "胸部X線の所見"},
    ]}]  # fmt: skip
    enc = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert image_token == model.config.image_token_id
    assert int((enc["input_ids"] == image_token).sum()) == NUM_IMAGE_TOKENS
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 5


def test_it_round_trips_a_causal_checkpoint_through_the_auto_classes(tiny_causal: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal, local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"
    enc: Any = tokenizer.apply_chat_template(
        [{"role": "user", "content": "心電図の所見"}], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = enc["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "心電図の所見\n"


def test_it_decodes_japanese_medical_json_exactly(tiny_llava: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llava, local_files_only=True)
    ids = tokenizer.encode(JAPANESE_JSON, add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids
    assert len(ids) == len(JAPANESE_JSON)  # one character, one token
    assert tokenizer.decode(ids) == JAPANESE_JSON
    assert {"<image>", "</s>", "<pad>"} <= set(tokenizer.all_special_tokens)


def test_it_builds_the_same_weights_for_the_same_seed(tmp_path: Path) -> None:
    def digest(path: Path) -> str:
        return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()

    a = digest(build_tiny_checkpoint(tmp_path / "a", kind="causal", seed=3))
    b = digest(build_tiny_checkpoint(tmp_path / "b", kind="causal", seed=3))
    c = digest(build_tiny_checkpoint(tmp_path / "c", kind="causal", seed=4))
    assert a == b != c


def test_it_refuses_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny checkpoint kind"):
        build_tiny_checkpoint(tmp_path, kind="whisper")  # type: ignore[arg-type]


@pytest.mark.parametrize(("shape", "billions"), [("llm-jp-3-1.8b", 1.87), ("llm-jp-3-13b", 13.71)])
def test_the_benchmark_shapes_have_the_parameter_counts_of_llm_jp_3(shape: str, billions: float) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ml.tiny import SHAPES

    with torch.device("meta"):  # shapes only, no memory
        model = LlamaForCausalLM(LlamaConfig(**SHAPES[shape], tie_word_embeddings=False))
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == billions


def test_a_shaped_checkpoint_loads_through_the_engine_and_writes(tmp_path: Path) -> None:
    import json

    from ml.engines import build_engine
    from ml.protocol import DraftRequest, Finished
    from ml.tiny import build_shaped_checkpoint

    path = build_shaped_checkpoint(tmp_path / "tiny", "tiny")
    saved = json.loads((path / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) == "bfloat16" and saved["num_hidden_layers"] == 2
    engine: Any = build_engine("transformers", str(path), device="cpu", max_batch_size=2, max_seq_len=128)
    try:
        result = engine.submit_sync(DraftRequest(request_id="s", task="checkup_summary", prompt="心電図",
                                                 prompt_version="bench", max_new_tokens=5, ignore_eos=True))
    finally:
        engine.close()
    assert isinstance(result, Finished) and result.completion_tokens == 5


def test_a_shaped_vocabulary_decodes_every_id_to_a_visible_character() -> None:
    """A random model of llm-jp's 99,487-token vocabulary emits any id; with only our trained
    characters most ids decoded to nothing, so benchmarks timed "first token" at the first *visible*
    one (seconds late on the H200). Padded, every id is one character and the trained ids keep theirs."""
    from ml.tiny import SHAPES, _build_text_tokenizer

    size = SHAPES["llm-jp-3-13b"]["vocab_size"]
    trained = _build_text_tokenizer()
    padded = _build_text_tokenizer(vocab_size=size)
    assert len(padded) == size
    text = "健診の総合判定 HbA1c 6.8 %\n{\"impression\": \"要精密検査\"}"
    assert padded(text)["input_ids"] == trained(text)["input_ids"]
    beyond = list(range(len(trained), size))
    decoded = padded.decode(beyond, skip_special_tokens=True)
    assert len(decoded) == len(beyond) and not decoded.isspace() and "\ufffd" not in decoded
    assert padded.decode([padded.eos_token_id, padded.convert_tokens_to_ids("健")], skip_special_tokens=True) == "健"
