"""Engines behind `ml.protocol.Engine`, and the one factory that builds them.

Kinds: "template" (deterministic Japanese drafter, no model), "transformers" (a local HF
checkpoint with our continuous batcher), "openai" (a vLLM / OpenAI-compatible server).
Engine modules are imported on demand so that importing this package stays light (no torch).
"""

from __future__ import annotations

from typing import Any

from ml.protocol import Engine, EngineError

KINDS = ("template", "transformers", "openai")


def build_engine(kind: str, location: str, **options: Any) -> Engine:
    """Build an engine.

    - `template`: `location` is the template id (`template-ja-v1`); options: chunk_chars, delay.
    - `transformers`: `location` is a checkpoint directory; options: device, dtype, max_batch_size,
      max_seq_len, compile, compile_shapes ("dynamic" | "static"), max_prefill_tokens. Weights load
      once per process. With `process=True` the engine runs in a child process of its own
      (`ProcessEngine`: what a GPU worker uses, so the generation loop does not share an
      interpreter lock with the worker's job threads); `cpus` ("0-3" or ids) keeps that process
      on those CPUs (`ml.engines.cpus`).
    - `openai` (alias `vllm`): `location` is the server URL; options: model (required), api_key,
      timeout, connect_timeout, extra_body.

    Raises `EngineError` for an unknown kind, bad options or a model that cannot be loaded.
    """
    try:
        if kind == "template":
            from ml.engines.template import TemplateEngine

            return TemplateEngine(location or "template-ja-v1", **options)
        if kind == "transformers":
            if options.pop("process", False):
                from ml.engines.process_engine import ProcessEngine

                return ProcessEngine(kind, location, **options)
            if options.get("cpus") is not None:
                raise EngineError("cpus applies to an engine in a process of its own (process=True)")
            from ml.engines.transformers_engine import TransformersEngine

            return TransformersEngine(location, **options)
        if kind in ("openai", "vllm"):
            from ml.engines.openai_engine import OpenAIServerEngine

            if "model" not in options:
                raise EngineError("the openai engine needs model=<the served model name>")
            return OpenAIServerEngine(location, **options)
    except TypeError as exc:  # an option the engine does not take
        raise EngineError(f"bad options for engine {kind!r}: {exc}") from exc
    raise EngineError(f"unknown engine kind {kind!r}; known: {', '.join(KINDS)}")
