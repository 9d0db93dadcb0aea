"""The real-data path: Fashion-MNIST as found on this machine (CI installs Debian's package), no skipping."""
import json

import pytest
import torch

from agic.data import DEBIAN_FASHION_MNIST, first_examples, load_dataset
from agic.training import evaluate, train
from conftest import run_agic


def test_fashion_mnist_is_found_and_split():
    s = load_dataset("fashion-mnist")
    assert (len(s.train), len(s.val), len(s.test)) == (55000, 5000, 10000)
    assert s.info.input_shape == (1, 28, 28) and s.info.classes[9] == "Ankle boot"
    assert torch.bincount(s.test.tensors[1]).tolist() == [1000] * 10
    assert s.test.tensors[1][:5].tolist() == [9, 2, 1, 1, 6]  # the official test set's first labels
    x = torch.cat([s.train.tensors[0], s.val.tensors[0]])
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-2


def test_debian_copy_is_used_when_nothing_else_is_there():
    assert DEBIAN_FASHION_MNIST.is_dir(), "CI must install Debian's dataset-fashion-mnist before the tests"
    assert load_dataset("fashion-mnist").info.source == str(DEBIAN_FASHION_MNIST)


def test_cli_data_reports_the_splits():
    res = run_agic("data", "--dataset", "fashion-mnist")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert (out["train"], out["val"], out["test"], out["shape"]) == (55000, 5000, 10000, [1, 28, 28])


@pytest.mark.slow
def test_short_real_training_learns_and_is_cached():
    quick = dict(model="vgg_small", dataset="fashion-mnist", epochs=2, batch_size=64, train_limit=4000,
                 eval_limit=2000, progress=False)   # accuracies on the first 2,000 images: standard error 0.01
    first = train(**quick)
    assert first.metrics["test_accuracy"] > 0.75, first.metrics["test_accuracy"]  # chance: 0.10
    again = train(**quick)
    assert again.path == first.path
    head = first_examples(load_dataset("fashion-mnist").test, 2000)
    assert evaluate(again.model, head) == first.metrics["test_accuracy"]


def test_cli_train_prints_json_last(isolated_cache):
    res = run_agic("train", "--model", "resnet8", "--dataset", "fashion-mnist", "--epochs", "1", "--train-limit",
                   "1000", "--quiet")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["checkpoint"].startswith(str(isolated_cache)) and out["checkpoint"].endswith("model.pt")
    assert 0.1 < out["test_accuracy"] <= 1.0 and out["model"] == "resnet8"
