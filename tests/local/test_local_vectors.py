"""The in-memory vector index against a plain dict model, through random appends, deletes and compactions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.local.vectors import VectorIndex

DIMS = 6
GROUPS = ("hr", "it", "finance")

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 40), st.integers(0, 2**32 - 1)),
        st.tuples(st.just("delete"), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations, st.lists(st.sampled_from(GROUPS), max_size=2, unique=True), st.integers(1, 30))
def test_the_index_matches_a_plain_model(ops: list[tuple], user_groups: list[str], top: int) -> None:
    index = VectorIndex(DIMS)
    model: dict[int, tuple[np.ndarray, tuple[str, ...]]] = {}
    lengths: dict[int, int] = {}  # row -> token count
    next_row = 1
    for kind, amount, seed in ops:
        rng = np.random.default_rng([seed, next_row])  # distinct vectors: no ties
        if kind == "add":
            rows = list(range(next_row, next_row + amount))
            next_row += amount + int(rng.integers(0, 3))  # row numbers may skip, never repeat
            vectors = rng.standard_normal((amount, DIMS)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            groups = [tuple(g for g in GROUPS if rng.random() < 0.2) for _ in rows]
            sizes = rng.integers(1, 500, amount).tolist()
            index.apply(np.empty(0, dtype=np.int64), rows, [v.tobytes() for v in vectors], groups, sizes)
            model.update({row: (v, g) for row, v, g in zip(rows, vectors, groups, strict=True)})
            lengths.update(zip(rows, sizes, strict=True))
        else:
            live = sorted(model)
            gone = [row for row in live if rng.random() < amount]
            index.apply(np.array(gone, dtype=np.int64), [], [], [], [])
            for row in gone:
                del model[row], lengths[row]
        assert len(index) == len(model)
        assert sorted(index.live_rows().tolist()) == sorted(model)
        assert np.isclose(index.average_size, sum(lengths.values()) / len(lengths) if lengths else 0.0)
        probe = np.arange(next_row + 2, dtype=np.int64)  # every row ever added, and some never
        slots, held = index.slots(probe)
        assert probe[held].tolist() == sorted(model)
        assert index.sizes(slots[held]).tolist() == [lengths[row] for row in sorted(model)]

    query = np.random.default_rng(0).standard_normal(DIMS).astype(np.float32)
    query /= np.linalg.norm(query)
    for groups in (None, user_groups):
        visible = {
            row: float(v @ query)
            for row, (v, g) in model.items()
            if groups is None or not g or set(g) & set(groups)
        }
        expected = sorted(visible, key=visible.__getitem__, reverse=True)[:top]
        found = index.search(query, top, groups)
        assert [row for row, _ in found] == expected
        assert np.allclose([score for _, score in found], [visible[row] for row in expected], atol=1e-5)
    hidden = {row for row, (_, g) in model.items() if g and not set(g) & set(user_groups)}
    live = np.array(sorted(model), dtype=np.int64)
    slots, _ = index.slots(live)
    assert set(live[~index.allowed(user_groups)[slots]].tolist()) == hidden
