"""A tiny random checkpoint for tests: built offline in seconds, loaded through production code.

The checkpoint is shaped like the real ones we register (a LLaVA-style VLM, or a Llama text
model) so that `TransformersEngine` and `transformers serve` load it with the same Auto classes
they use for Asagi / LLaVA-JP / llm-jp. Its weights are random: the text it writes is noise, but
noise that is deterministic for a seed and that depends on the prompt and on the image.

The tokenizer is char-level (WordLevel over single characters) so that Japanese output always
decodes to whole characters and every JSON punctuation mark is one token.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

# Enough Japanese to cover what our prompts, templates and reports write; characters outside it
# become <unk> (harmless for a random model, but keep prompts mostly inside it).
_JA_MEDICAL_CORPUS = """
健診 人間ドック 受診勧奨 保健指導 特定健診 判定 判定区分 基準値 要精密検査 要再検査 要経過観察 異常なし
所見 印象 推奨 経過観察 精密検査 再検査 専門医 受診 紹介 治療 継続 生活習慣 改善 食事 運動 禁煙 節酒
胸部 X線 単純 写真 正面 側面 肺野 右上 右中 右下 左上 左下 肺門 縦隔 心胸郭比 心陰影 拡大 胸水 気胸
結節 腫瘤 浸潤影 すりガラス影 索状影 石灰化 胸膜 肥厚 無気肺 陳旧性 炎症 瘢痕 骨 肋骨 骨折 側弯
心電図 洞調律 洞性徐脈 洞性頻脈 心房細動 期外収縮 上室性 心室性 房室ブロック 脚ブロック 右脚 左脚
電気軸 左軸偏位 右軸偏位 高電位 低電位 ST 低下 上昇 T波 陰性 平低 異常Q波 QT 延長 PR QRS 心拍数 拍
眼底 網膜 視神経乳頭 陥凹 緑内障 疑い 動脈硬化 高血圧性 変化 出血 白斑 黄斑 変性 糖尿病網膜症 硝子体
CT 造影 単純 肝臓 胆嚢 膵臓 腎臓 脾臓 副腎 膀胱 前立腺 子宮 卵巣 リンパ節 嚢胞 脂肪肝 結石 腫大 萎縮
血圧 収縮期 拡張期 脈拍 身長 体重 腹囲 肥満 指数 血糖 空腹時 随時 糖 尿 尿酸 尿蛋白 尿潜血 脂質
中性脂肪 総 善玉 悪玉 コレステロール 肝機能 腎機能 貧血 赤血球 白血球 血小板 血色素 量 値 率 数
ヘモグロビン クレアチニン 推算 糸球体 濾過量 高値 低値 軽度 中等度 高度 重度 正常 範囲 内 外 以上 以下 未満
境界域 前回 比較 増加 減少 変化なし 不変 新規 出現 消失 認める 認めない 認めません 認められます 明らか
指摘 されます されました あり なし です ます でした ません 可能性 否定 できません ください お勧め します
医師 技師 読影 所見なし 所見あり 部位 重症度 確信度 要約 総合 今回 結果 検査 項目 測定 単位 年 月 日 歳 男性 女性
書 記載 記述 作成 径 眼圧 比 幅 間隔 誘導 陰影 心房 心室 肺 肝 胆 腎 膵 脾 胃 腸 頸 椎 腰 足 手 頭 顔 首
あなた 医師 して いて 見 書いて ください 出力 形式 日本語 英語 画像 提示 以下 次 作 述べ
右 左 上 中 下 前 後 内側 外側 両側 片側 全体 一部 多発 単発 境界 明瞭 不明瞭 大きさ 約 程度
を が は に で と の も や へ から まで より について において による ため こと もの よう また および
高血圧 糖尿病 脂質異常症 高尿酸血症 慢性腎臓病 メタボリックシンドローム 予備群 該当 非該当 服薬 中
あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん
がぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽぁぃぅぇぉっゃゅょー
アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン
ガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポァィゥェォッャュョヴ
　、。・「」『』（）［］｛｝：；！？〜／％＋－＝
"""

_SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "<|system|>", "<|user|>", "<|assistant|>"]
# Special tokens by role ("*_token" names are not secrets, whatever a password linter thinks).
_NAMED_SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                  "image_token": "<image>"}  # fmt: skip

# Messages are rendered as `<|role|>content\n`; image parts become one `<image>` each, which the
# processor expands to one placeholder per vision patch.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

IMAGE_SIZE = 32
PATCH_SIZE = 8
# CLS is dropped ("default" feature selection): one placeholder per patch.
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


def _corpus() -> list[str]:
    return [_JA_MEDICAL_CORPUS, string.printable, '{}[]":,.-+0123456789 truefalsenull']


# Visible characters for ids beyond the trained ones (CJK ideographs, their extensions, Hangul):
# enough for a 100k vocabulary without private-use or unassigned code points.
_FILLER_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xAC00, 0xD7A3), (0x20000, 0x2A6DF), (0x2A700, 0x2EBE0),
                  (0x30000, 0x3134A))


def _filler_characters(taken: set[str], count: int) -> list[str]:
    out: list[str] = []
    for low, high in _FILLER_RANGES:
        for code in range(low, high + 1):
            if len(out) == count:
                return out
            if chr(code) not in taken:
                out.append(chr(code))
    if len(out) < count:
        raise ValueError(f"cannot fill a vocabulary with {count} more visible characters")
    return out


def _build_text_tokenizer(vocab_size: int = 0):  # -> PreTrainedTokenizerFast (untyped: transformers is lazy)
    """Our character-level tokenizer; with `vocab_size` larger than what it learns, padded with
    visible characters up to that size, so that every id a model of that vocabulary can emit decodes
    to text (random weights then write visible characters, as a real model's tokens are)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def shaped(model: Any) -> Tokenizer:
        tok = Tokenizer(model)
        # Every character (newlines included) is its own word, and words are glued back without spaces.
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        return tok

    tok = shaped(models.WordLevel(unk_token=_NAMED_SPECIAL["unk_token"]))
    trainer = trainers.WordLevelTrainer(vocab_size=100_000, min_frequency=1, special_tokens=_SPECIAL)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if vocab_size > tok.get_vocab_size():
        vocab = tok.get_vocab()
        for char in _filler_characters(set(vocab), vocab_size - len(vocab)):
            vocab[char] = len(vocab)
        tok = shaped(models.WordLevel(vocab=vocab, unk_token=_NAMED_SPECIAL["unk_token"]))
        tok.add_special_tokens(_SPECIAL)  # already in the vocabulary: they keep their ids
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        **_NAMED_SPECIAL,
        extra_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        padding_side="left",
        model_max_length=2048,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_checkpoint(
    path: Path,
    kind: Literal["llava", "causal"] = "llava",
    seed: int = 0,
    initializer_range: float = 0.2,
) -> Path:
    """Write a tiny random checkpoint to `path` and return `path`.

    `llava`: a LLaVA-style VLM (tiny CLIP vision tower + projector + tiny Llama) with an image
    processor and a `LlavaProcessor`; loads with `AutoProcessor` + `AutoModelForImageTextToText`.
    `causal`: the tiny Llama alone; loads with `AutoTokenizer` + `AutoModelForCausalLM`.

    `initializer_range` is larger than a real model's so that the random logits are well separated:
    greedy decoding then does not hinge on float rounding, and the image visibly steers the output.
    """
    import torch
    from transformers import CLIPVisionConfig, GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_text_tokenizer()
    vocab_size = len(tokenizer)
    text_config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=initializer_range,
    )
    generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )

    torch.manual_seed(seed)
    if kind == "causal":
        text_model = LlamaForCausalLM(text_config)
        text_model.generation_config = generation_config
        text_model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path
    if kind != "llava":
        raise ValueError(f"unknown tiny checkpoint kind {kind!r} (expected 'llava' or 'causal')")

    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    vision_config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
        initializer_range=initializer_range,
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=NUM_IMAGE_TOKENS,
        tie_word_embeddings=False,
    )
    config.initializer_range = initializer_range
    model = LlavaForConditionalGeneration(config)
    model.generation_config = generation_config
    model.save_pretrained(path)
    # Saved before the processor adopts it (which stamps a processor_class into its config).
    tokenizer.save_pretrained(path)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    return path


# Random-weight stand-ins for the GPU figures (issue 5): the transformer shapes of llm-jp-3 (Llama
# architecture; hidden size, layers, heads, MLP width and vocabulary as published in their configs).
SHAPES: dict[str, dict[str, Any]] = {
    "llm-jp-3-1.8b": {"hidden_size": 2048, "intermediate_size": 7168, "num_hidden_layers": 24,
                      "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 99487},
    "llm-jp-3-13b": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                     "num_attention_heads": 40, "num_key_value_heads": 40, "vocab_size": 99487},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 0},
}


def build_shaped_checkpoint(
    path: Path, shape: str, device: str = "cpu", seed: int = 0, layers: int | None = None
) -> Path:
    """A causal Llama with random weights in the shape `SHAPES[shape]`, saved in bf16 with our
    char-level tokenizer padded to the shape's vocabulary (every id decodes to a character), for
    benchmarks that must load through the production path. Built on `device` (the 13B shape:
    ~26 GB, build it on the GPU). `layers` keeps the widths with fewer layers (fast to compile)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    dims = dict(SHAPES[shape])
    if layers is not None:
        dims["num_hidden_layers"] = layers
    tokenizer = _build_text_tokenizer(vocab_size=dims["vocab_size"])
    dims["vocab_size"] = max(dims["vocab_size"], len(tokenizer))
    config = LlamaConfig(**dims, max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False, dtype="bfloat16")
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # 13B in float32 would need 52 GB while it is built
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, do_sample=False,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    return path


def main() -> None:
    """`python -m ml.tiny PATH [llava|causal]`: build a checkpoint for manual runs (demo, `transformers serve`)."""
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/tiny-llava")
    kind: Literal["llava", "causal"] = "causal" if len(sys.argv) > 2 and sys.argv[2] == "causal" else "llava"
    print(build_tiny_checkpoint(target, kind=kind))


if __name__ == "__main__":
    main()
