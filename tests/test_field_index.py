"""Field indexes (``value -> sample indices``) against brute force, and through the loader."""

from __future__ import annotations

import numpy as np
import pytest

from slipstream import SlipstreamLoader
from slipstream.cache import SlipCache, build_cache
from slipstream.cache.field_index import FieldIndex
from slipstream.pipelines import supervised_train


def _brute_force(values, wanted) -> np.ndarray:
    return np.array([i for i, v in enumerate(values) if v in wanted], dtype=np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_index_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(-5, 40, 2000)
    index = FieldIndex(values)
    assert list(index.values) == sorted(set(values.tolist()))
    assert index.counts.sum() == len(values)
    for _ in range(20):
        wanted = set(rng.integers(-8, 45, int(rng.integers(0, 6))).tolist())
        got = index.indices_of(sorted(wanted))
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, _brute_force(values.tolist(), wanted))
    np.testing.assert_array_equal(index.indices_of(7), _brute_force(values.tolist(), {7}))
    assert index.indices_of([3.5]).size == 0  # no cast of 3.5 to 3
    assert index.indices_of([]).size == 0


def test_float_and_repeated_wanted_values():
    values = np.array([0.5, np.nan, 2.0, 0.5, -1.0])
    index = FieldIndex(values)
    np.testing.assert_array_equal(index.indices_of([0.5, 0.5, 2.0]), [0, 2, 3])


class _NamesReader:
    field_types = {"name": "str", "label": "int", "blob": "bytes"}
    names = ["cat", "dog", "", "caté", "cat", "dogs", "a\u6f22", "dog"]

    def __len__(self) -> int:
        return len(self.names)

    def read_sample(self, i: int) -> dict:
        return {"name": self.names[i], "label": i % 3, "blob": b"x" * i}

    def describe(self, i: int) -> str:
        return f"name {i}"

    def fingerprint(self) -> str:
        return "names"


def test_string_field_index(tmp_path):
    cache = SlipCache.open(build_cache(_NamesReader(), tmp_path / "n.slip", progress=False))
    index = FieldIndex.of_field(cache, "name")
    names = _NamesReader.names
    for wanted in (["cat"], ["dog", "caté"], [""], ["a\u6f22", "dogs"], ["nope", "catdogdog"]):
        np.testing.assert_array_equal(index.indices_of(wanted), _brute_force(names, set(wanted)))
    np.testing.assert_array_equal(index.indices_of("dog"), [1, 7])
    labels = FieldIndex.of_field(cache, "label")
    np.testing.assert_array_equal(labels.indices_of([2]), [2, 5])
    with pytest.raises(TypeError, match="index a number or str"):
        FieldIndex.of_field(cache, "blob")
    with pytest.raises(KeyError, match="no field 'nope'"):
        FieldIndex.of_field(cache, "nope")


def test_dataset_subset_through_the_loader(photo_dataset):
    labels = np.asarray(photo_dataset.cache.numbers("label"))
    wanted = [0, 3, 7]
    subset = photo_dataset.indices_where("label", wanted)
    np.testing.assert_array_equal(subset, _brute_force(labels.tolist(), set(wanted)))
    assert photo_dataset.field_index("label") is photo_dataset.field_index("label")  # kept
    loader = SlipstreamLoader(
        photo_dataset,
        16,
        supervised_train(32, normalize=False, dtype="uint8"),
        indices=subset,
        device="cpu",
        num_threads=2,
        fields=["label", "index"],
    )
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = []
        for batch in loader:
            assert set(batch["label"].tolist()) <= set(wanted)
            seen += batch["index"].tolist()
        assert sorted(seen) == subset.tolist()  # every sample of those classes, once
