"""Each bad input gets one clear error (what was wrong, what is valid) and writes nothing."""
import struct
from pathlib import Path

import pytest

from agic.core import AgicError
from agic.data import load_dataset
from agic.training import train
from conftest import run_agic


def files_under(folder: Path):
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


def assert_cli_refuses(args, message, cache):
    res = run_agic(*args)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agic: error: "), res.stderr  # one line, no traceback
    assert message in err[0], err[0]
    assert res.stdout == ""
    assert files_under(cache) == [], files_under(cache)


def test_unknown_model_name_lists_valid_ones(isolated_cache):
    assert_cli_refuses(["train", "--model", "vgg_smol", "--dataset", "synthetic"],
                       "unknown model 'vgg_smol'; valid: vgg_small, resnet8", isolated_cache)


def test_unknown_dataset_name_lists_valid_ones(isolated_cache):
    assert_cli_refuses(["train", "--model", "vgg_small", "--dataset", "fmnist"],
                       "unknown data set 'fmnist'; valid: fashion-mnist, mnist, cifar10, synthetic, folder:<path>",
                       isolated_cache)


def test_out_of_range_training_setting(isolated_cache):
    assert_cli_refuses(["train", "--dataset", "synthetic", "--epochs", "0"], "epochs must be in [1, 1000], got 0",
                       isolated_cache)


def test_model_with_wrong_input_channels(isolated_cache, tmp_path):
    (tmp_path / "rgb_models.py").write_text(
        "from torch import nn\n"
        "def rgb():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), "
        "nn.Linear(4, 10))\n")
    res = run_agic("train", "--model", "rgb_models:rgb", "--dataset", "synthetic", env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 2 and "does not accept synthetic images of shape (1, 28, 28)" in res.stderr, res.stderr
    assert files_under(isolated_cache) == []


# Bad checkpoints (missing, truncated, random bytes, a pickled model, a malicious pickle, another model's, not a state
# dict) are tested where they are read, in nbs/02a_training.ipynb; a model with the wrong number of classes in
# nbs/02_models.ipynb.


def test_data_folder_without_the_expected_files(tmp_path, isolated_cache):
    (tmp_path / "data").mkdir(); (tmp_path / "data" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    res = run_agic("data", "--dataset", "fashion-mnist", "--root", tmp_path / "data")
    assert res.returncode == 2
    assert ("does not hold fashion-mnist: missing train-labels-idx1-ubyte[.gz], "
            "t10k-images-idx3-ubyte[.gz]") in res.stderr
    assert files_under(isolated_cache) == []


def test_corrupt_idx_file(tmp_path):
    for stem in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]:
        (tmp_path / stem).write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(3))  # promises 10, holds 3
    with pytest.raises(AgicError, match="truncated: its header promises 10 bytes"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_no_data_anywhere_names_every_place(tmp_path, monkeypatch):
    import agic.data
    monkeypatch.setattr(agic.data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    monkeypatch.setenv("AGIC_DATA", str(tmp_path / "empty"))
    with pytest.raises(AgicError) as e:
        load_dataset("fashion-mnist", download=False)
    msg = str(e.value)
    for place in [str(tmp_path / "empty"), "FashionMNIST/raw", str(tmp_path / "not-installed"),
                  "apt-get install dataset-fashion-mnist", "AGIC_DATA"]:
        assert place in msg, (place, msg)


def test_failed_training_leaves_no_checkpoint(isolated_cache, monkeypatch):
    import agic.training
    def crash(*a, **k): raise KeyboardInterrupt  # a crash in the middle of training
    monkeypatch.setattr(agic.training, "_fit", crash)
    with pytest.raises(KeyboardInterrupt):
        train(model="vgg_small", dataset="synthetic", epochs=1, progress=False)
    assert not any(p.name in ("model.pt", "metrics.json") for p in files_under(isolated_cache))
