"""A stand-in for a llama.cpp build that crashes on this CPU: the probe's child runs it in place
of loading the model, and it dies the same way, by a real SIGSEGV (it reads address 0)."""

from __future__ import annotations

import ctypes


def first_answer(model_path: str, n_ctx: int, n_threads: int) -> None:
    del model_path, n_ctx, n_threads
    ctypes.string_at(0)
