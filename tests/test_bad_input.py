"""Each bad input gets one clear error (what was wrong, what is valid) and writes nothing."""
import random, struct
from pathlib import Path

import pytest
import torch
from torch import nn

from agic.core import AgicError
from agic.data import load_dataset
from agic.models import build_model
from agic.training import load_checkpoint, load_state_dict, save_checkpoint, train
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
                       "unknown data set 'fmnist'; valid: fashion-mnist, mnist, cifar10, synthetic, folder:<path>", isolated_cache)


def test_out_of_range_training_setting(isolated_cache):
    assert_cli_refuses(["train", "--dataset", "synthetic", "--epochs", "0"], "epochs must be in [1, 1000], got 0", isolated_cache)


def test_model_with_wrong_input_channels(isolated_cache, tmp_path):
    (tmp_path / "rgb_models.py").write_text(
        "from torch import nn\n"
        "def rgb():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))\n")
    res = run_agic("train", "--model", "rgb_models:rgb", "--dataset", "synthetic", env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 2 and "does not accept synthetic images of shape (1, 28, 28)" in res.stderr, res.stderr
    assert files_under(isolated_cache) == []


def test_model_with_wrong_number_of_classes():
    info = load_dataset("synthetic").info
    import sys, types
    mod = types.ModuleType("hundred_classes"); sys.modules["hundred_classes"] = mod
    mod.make = lambda in_channels: nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 100))
    with pytest.raises(AgicError, match=r"returns \(2, 100\).*expected \(2, 10\)"):
        build_model("hundred_classes:make", info)


@pytest.fixture
def checkpoint(tmp_path):
    model = build_model("vgg_small", load_dataset("synthetic").info)
    return model, save_checkpoint(model, {"test_accuracy": 0.0}, tmp_path / "ckpt")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(AgicError, match="does not exist; train the model first"):
        load_state_dict(tmp_path / "missing.pt")


def test_truncated_checkpoint(tmp_path, checkpoint):
    _, path = checkpoint
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AgicError, match="truncated or corrupt"):
        load_state_dict(tmp_path / "cut.pt")


@pytest.mark.parametrize("seed", range(25))
def test_corrupt_checkpoint(tmp_path, seed):
    "Random bytes, some looking like a pickle or a zip: always one AgicError, never another exception."
    noise = random.Random(seed).randbytes(4096)
    if seed % 5 == 1: noise = b"\x80\x02" + noise        # a pickle protocol header
    if seed % 5 == 2: noise = b"PK\x03\x04" + noise      # a zip header, like torch's own format
    (tmp_path / "noise.pt").write_bytes(noise)
    with pytest.raises(AgicError, match="truncated or corrupt|holds pickled Python objects"):
        load_state_dict(tmp_path / "noise.pt")


def test_pickled_model_is_refused(tmp_path, checkpoint):
    model, _ = checkpoint
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(AgicError, match=r"holds pickled Python objects \(.*VGGSmall\), not a plain state dict"):
        load_state_dict(tmp_path / "whole.pt")


class Payload:
    "A pickle that, if ever unpickled, creates a file: the proof that loading never runs it."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (Path(self.marker),))


def test_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"conv.weight": Payload(str(marker))}, tmp_path / "evil.pt")
    # control: an ordinary unpickler does run it, so the test can tell
    torch.load(tmp_path / "evil.pt", weights_only=False); assert marker.exists(); marker.unlink()
    with pytest.raises(AgicError, match="refuses to unpickle"):
        load_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


def test_checkpoint_of_another_model(checkpoint):
    _, path = checkpoint
    other = build_model("resnet8", load_dataset("synthetic").info)
    with pytest.raises(AgicError, match="does not fit this model: missing"):
        load_checkpoint(other, path)


def test_state_dict_of_non_tensors(tmp_path):
    torch.save({"a": [1, 2]}, tmp_path / "lists.pt")
    with pytest.raises(AgicError, match="not a state dict"):
        load_state_dict(tmp_path / "lists.pt")


def test_data_folder_without_the_expected_files(tmp_path, isolated_cache):
    (tmp_path / "data").mkdir(); (tmp_path / "data" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    res = run_agic("data", "--dataset", "fashion-mnist", "--root", tmp_path / "data")
    assert res.returncode == 2
    assert "does not hold fashion-mnist: missing train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]" in res.stderr
    assert files_under(isolated_cache) == []


def test_corrupt_idx_file(tmp_path):
    for stem in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
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
    for place in [str(tmp_path / "empty"), "FashionMNIST/raw", str(tmp_path / "not-installed"), "apt-get install dataset-fashion-mnist", "AGIC_DATA"]:
        assert place in msg, (place, msg)


def test_failed_training_leaves_no_checkpoint(isolated_cache, monkeypatch):
    import agic.training
    def crash(*a, **k): raise KeyboardInterrupt  # a crash in the middle of training
    monkeypatch.setattr(agic.training, "_fit", crash)
    with pytest.raises(KeyboardInterrupt):
        train(model="vgg_small", dataset="synthetic", epochs=1, progress=False)
    assert not any(p.name in ("model.pt", "metrics.json") for p in files_under(isolated_cache))
