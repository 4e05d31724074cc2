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
        num_workers=2,
        fields=["label", "index"],
    )
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = []
        for batch in loader:
            assert set(batch["label"].tolist()) <= set(wanted)
            seen += batch["index"].tolist()
        assert sorted(seen) == subset.tolist()  # every sample of those classes, once


# --------------------------------------------------------------- stored indexes


def _scan(values) -> dict:
    """An independent ``value -> indices`` scan, one Python pass."""
    found: dict = {}
    for i, v in enumerate(values):
        found.setdefault(v, []).append(i)
    return found


@pytest.fixture
def names_cache(tmp_path):
    return build_cache(_NamesReader(), tmp_path / "n.slip", progress=False)


def test_write_index_stores_the_originals_format(names_cache):
    from slipstream import write_index

    written = write_index(names_cache, fields=["label", "name"])
    assert sorted(p.name for p in written.values()) == ["label_index.npy", "name_index.npy"]
    assert not [p for p in names_cache.iterdir() if ".tmp-" in p.name]
    labels = [i % 3 for i in range(len(_NamesReader.names))]
    for field, values in (("label", labels), ("name", _NamesReader.names)):
        # read the way the original slipstream reads it: np.load(...).item()
        stored = np.load(names_cache / f"{field}_index.npy", allow_pickle=True).item()
        scan = _scan(values)
        assert set(stored) == set(scan)
        for key, ids in stored.items():
            assert type(key) is type(values[0]) and ids.dtype == np.int64
            np.testing.assert_array_equal(ids, scan[key])


def test_reopened_cache_finds_the_index(names_cache):
    from slipstream import SlipstreamDataset, write_index

    assert SlipCache.open(names_cache).indexed_fields == []
    cache = SlipCache.open(names_cache)
    write_index(cache, ["label"])
    assert cache.indexed_fields == ["label"]  # the cache passed in sees it at once
    reopened = SlipCache.open(names_cache)
    assert reopened.indexed_fields == ["label"]
    index = reopened.get_index("label")
    assert index is reopened.get_index("label")  # read once
    assert len(index) == 3 and index.keys() == [0, 1, 2] and 1 in index and 5 not in index
    np.testing.assert_array_equal(index[2], [2, 5])
    assert {k: v.tolist() for k, v in index.items()} == _scan(
        [i % 3 for i in range(len(_NamesReader.names))]
    )
    with pytest.raises(KeyError):
        index[7]
    with pytest.raises(KeyError, match="write_index"):
        reopened.get_index("name")
    ds = SlipstreamDataset(names_cache)
    assert ds.cache.indexed_fields == ["label"]
    np.testing.assert_array_equal(ds.indices_where("label", [0, 2]), [0, 2, 3, 5, 6])


def test_an_index_written_by_the_original_is_read(names_cache):
    # what the original's write_index saves: np.save of {value.item(): np.where(...)[0]}
    names = np.array(_NamesReader.names)
    original = {str(v): np.where(names == v)[0].astype(np.int64) for v in np.unique(names)}
    np.save(names_cache / "name_index.npy", original, allow_pickle=True)
    index = SlipCache.open(names_cache).get_index("name")
    assert index.keys() == sorted(set(_NamesReader.names), key=lambda s: s.encode())
    np.testing.assert_array_equal(index["dog"], [1, 7])
    np.testing.assert_array_equal(index.indices_of(["caté", ""]), [2, 3])


def _stored(cache_dir, field, mapping) -> None:
    np.save(cache_dir / f"{field}_index.npy", mapping, allow_pickle=True)


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({0: np.array([0, 3, 6]), 1: np.array([1, 4, 7]), 2: np.array([2])}, "stale"),  # lost 5
        ({0: np.array([0, 3, 6, 6]), 1: np.array([1, 4, 7]), 2: np.array([2])}, "twice"),
        ({0: np.array([1, 3, 6]), 1: np.array([0, 4, 7]), 2: np.array([2, 5])}, "listed under"),
        ({0: np.array([0, 3, 6, 9]), 1: np.array([1, 4]), 2: np.array([2, 5])}, "stale"),
        ({"0": np.array([0, 3, 6]), 1: np.array([1, 4, 7]), 2: np.array([2, 5])}, "garbled"),
        ({0: [0, 3, 6], 1: np.array([1, 4, 7]), 2: np.array([2, 5])}, "garbled"),
    ],
)
def test_a_stale_index_is_a_clear_error(names_cache, mapping, message):
    from slipstream import SlipstreamDataset
    from slipstream.cache.field_index import FieldIndexError

    _stored(names_cache, "label", mapping)
    with pytest.raises(FieldIndexError, match=message) as err:
        SlipCache.open(names_cache).get_index("label")
    assert "label_index.npy" in str(err.value) and "write_index" in str(err.value)
    with pytest.raises(FieldIndexError, match="label_index.npy"):  # the dataset uses it
        SlipstreamDataset(names_cache).indices_where("label", [0])


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.mark.parametrize("damage", ["truncate", "noise", "not a dict", "code", "a plain array"])
def test_a_garbled_index_is_a_clear_error(names_cache, damage, capsys):
    from slipstream import write_index
    from slipstream.cache.field_index import FieldIndexError

    path = names_cache / "label_index.npy"
    write_index(names_cache, ["label"])
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) - 40])
    elif damage == "noise":
        path.write_bytes(raw[:20] + bytes(range(256)) * 2)
    elif damage == "not a dict":
        np.save(path, np.array([1, 2, 3], dtype=object), allow_pickle=True)
    elif damage == "code":
        np.save(path, np.array({0: _Payload()}, dtype=object), allow_pickle=True)
    else:
        np.save(path, np.arange(8))
    with pytest.raises(FieldIndexError, match="label_index.npy") as err:
        SlipCache.open(names_cache).get_index("label")
    assert "write_index" in str(err.value)
    assert "pickled code ran" not in capsys.readouterr().out


def test_write_index_errors(names_cache, tmp_path):
    from slipstream import write_index

    with pytest.raises(TypeError, match="index a number or str"):
        write_index(names_cache, ["blob"])
    with pytest.raises(KeyError, match="nope"):
        write_index(names_cache, ["nope"])
    with pytest.raises(TypeError, match="needs a slip cache"):
        write_index(object(), ["label"])
    write_index(names_cache, ["label"])
    write_index(str(names_cache), "label")  # rewrites in place, atomically
    assert sorted(p.name for p in names_cache.iterdir() if "index" in p.name) == ["label_index.npy"]
