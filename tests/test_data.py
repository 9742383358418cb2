import gzip

import numpy as np
import pytest

from eqprop.data import IDX_FILES, load_dataset, read_idx, write_idx
from eqprop.errors import DataError


def test_digits_split_is_stratified_80_20_and_fixed_by_seed():
    a, b, c = load_dataset("digits", 0), load_dataset("digits", 0), load_dataset("digits", 1)
    assert len(a.x_train) + len(a.x_test) == 1797
    assert abs(len(a.x_test) / 1797 - 0.2) < 0.01
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    counts = np.bincount(a.y_test, minlength=10) / len(a.y_test)
    overall = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=10) / 1797
    assert np.abs(counts - overall).max() < 0.01
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1


def test_mnist1d_is_generated_offline():
    d = load_dataset("mnist1d")
    assert d.x_train.shape == (4000, 80) and d.x_test.shape == (1000, 80)
    assert set(np.unique(d.y_train)) == set(range(10))
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def test_mnist1d_inputs_are_on_and_off_channels_of_the_standardized_features():
    from mnist1d.data import get_dataset_args, make_dataset

    raw = make_dataset(get_dataset_args())
    d = load_dataset("mnist1d")
    mean, std = raw["x"].mean(0), raw["x"].std(0)
    for x, ours in ((raw["x"], d.x_train), (raw["x_test"], d.x_test)):
        on, off = ours[:, :40], ours[:, 40:]
        assert np.all(np.minimum(on, off) == 0)  # at most one channel of a feature is active
        np.testing.assert_allclose(on - off, np.clip((x - mean) / (3 * std), -1, 1), atol=1e-6)
    # standardized with the training split's statistics: its on-minus-off channels average near 0
    assert np.abs((d.x_train[:, :40] - d.x_train[:, 40:]).mean(0)).max() < 0.05


def _write_mnist_like(folder, n_train=30, n_test=10, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = IDX_FILES[split]
        for stem, array in ((images, rng.integers(0, 256, (n, 28, 28))), (labels, rng.integers(0, 10, n))):
            path = folder / stem
            write_idx(path, array)
            if gz:
                path.with_name(stem + ".gz").write_bytes(gzip.compress(path.read_bytes()))
                path.unlink()


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_are_read_plain_or_gzipped(tmp_path, gz):
    _write_mnist_like(tmp_path, gz=gz)
    d = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert d.x_train.shape == (30, 784) and d.x_test.shape == (10, 784)
    assert d.x_train.max() <= 1.0 and d.y_train.dtype == np.int64


def test_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), array)


def test_corrupt_idx_files_are_refused_with_the_path(tmp_path):
    _write_mnist_like(tmp_path)
    images = tmp_path / IDX_FILES["train"][0]
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*needs"):
        load_dataset("mnist", data_dir=tmp_path)
    images.write_bytes(b"\x12\x34garbage")
    with pytest.raises(DataError, match="bad magic"):
        load_dataset("mnist", data_dir=tmp_path)
    (tmp_path / IDX_FILES["test"][1]).unlink()
    _write_mnist_like(tmp_path)
    labels = tmp_path / IDX_FILES["test"][1]
    write_idx(labels, np.zeros(3))
    with pytest.raises(DataError, match="3 labels for 10 images"):
        load_dataset("mnist", data_dir=tmp_path)
    labels.unlink()
    with pytest.raises(DataError, match="missing IDX file"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")
