"""Every data source besides the default: MNIST-style idx folders, ImageFolder trees, CIFAR-10 offline, seeding."""
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from agic.core import AgicError
from agic.data import IDX_FILES, load_dataset
from agic.training import train


def write_idx(path, array):
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


@pytest.fixture
def small_mnist(tmp_path):
    "A tiny MNIST-layout folder (torchvision's MNIST/raw), uncompressed idx files."
    raw = tmp_path / "MNIST" / "raw"; raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in [("train", 300), ("test", 100)]:
        key = "train" if split == "train" else "test"
        write_idx(raw / IDX_FILES[f"{key}_images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / IDX_FILES[f"{key}_labels"], (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


def test_mnist_found_through_agic_data(small_mnist, monkeypatch):
    monkeypatch.setenv("AGIC_DATA", str(small_mnist))
    s = load_dataset("mnist", val_size=50, download=False)
    assert (len(s.train), len(s.val), len(s.test)) == (250, 50, 100)
    assert s.info.hflip is False and s.info.source == str(small_mnist / "MNIST" / "raw")


def test_explicit_root_wins_and_is_strict(small_mnist, tmp_path):
    assert len(load_dataset("mnist", root=small_mnist, val_size=50).test) == 100
    with pytest.raises(AgicError, match="does not hold mnist"):
        load_dataset("mnist", root=tmp_path / "MNIST")


@pytest.fixture
def image_folder(tmp_path):
    "An ImageFolder tree of RGB PNGs of two classes (red-ish and blue-ish squares) in various sizes."
    rng = np.random.default_rng(0)
    for cls, channel in [("blue", 2), ("red", 0)]:
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(30):
            size = int(rng.integers(20, 50))
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8); img[..., channel] = 200
            Image.fromarray(img).save(tmp_path / "imgs" / cls / f"{i}.png")
    return tmp_path / "imgs"


def test_image_folder_is_resized_normalised_and_split(image_folder):
    s = load_dataset(f"folder:{image_folder}", image_size=16)
    assert s.info.classes == ["blue", "red"] and s.info.input_shape == (3, 16, 16)
    assert len(s.train) + len(s.val) + len(s.test) == 60 and len(s.test) == 12
    x = torch.cat([s.train.tensors[0], s.val.tensors[0]])
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    red = s.test.tensors[0][s.test.tensors[1] == 1]
    assert (red[:, 0] > red[:, 2]).float().mean() > 0.9  # channels were not scrambled


def test_image_folder_trains(image_folder):
    trained = train(model="vgg_small", dataset=f"folder:{image_folder}", epochs=3, batch_size=8, lr=0.05,
                    progress=False)
    assert trained.metrics["test_accuracy"] >= 0.9  # red vs blue: any working pipeline separates them


def test_missing_image_folder():
    with pytest.raises(AgicError, match="image folder /no/such/folder does not exist"):
        load_dataset("folder:/no/such/folder")


def test_cifar10_offline_error_is_clear(tmp_path):
    with pytest.raises(AgicError, match="cifar10 not found in .* and not downloadable"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_splits_are_fixed_and_training_is_seeded(tmp_path):
    assert torch.equal(load_dataset("synthetic").val.tensors[0], load_dataset("synthetic").val.tensors[0])
    runs = [train(model="resnet8", dataset="synthetic", epochs=1, seed=s, cache=tmp_path / str(i), progress=False)
            for i, s in enumerate([1, 1, 2])]
    same = [torch.equal(runs[0].model.state_dict()[k], runs[1].model.state_dict()[k])
            for k in runs[0].model.state_dict()]
    assert all(same), "the same seed must give the same weights"
    assert not torch.equal(runs[0].model.stem[0].weight, runs[2].model.stem[0].weight)
