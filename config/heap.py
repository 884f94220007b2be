"""Long-lived processes (the ASGI server, a GPU worker) move what they built at start out of the
cyclic garbage collector's reach.

A full collection walks every tracked object. A worker or server process holds a few hundred
thousand of them from its imports (Django, Celery, Channels, tokenizers, ...), all alive until
it exits; walking them took 0.1–0.34 s with the interpreter lock held, and in a GPU worker
streaming 64 drafts every job thread stood still meanwhile (bench/inference_stack.py: that
round's claims came 0.3 s late and the engine ran short of requests). Frozen objects are skipped;
objects made later are collected as before. The cost: an object alive at the freeze that later
becomes part of an unreachable cycle is never freed (bounded by what was alive then). The ASGI
application settles when it is imported, so a test process that imports it settles too."""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect what is garbage now, freeze the rest. Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
