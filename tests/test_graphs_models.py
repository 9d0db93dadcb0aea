"""At-GCs of every zoo family build, satisfy completeness on every node, and refuse what they cannot explain."""
import os, signal, subprocess, sys, time

import pytest
import torch
from torch import nn

from agic.core import AgicError
from agic.data import load_dataset
from agic.graphs import AtGCBuilder
from agic.models import build_model
from agic.store import GraphStore
from conftest import ROOT, SYNTHETIC_CNN, run_agic, with_cnn

INFO = load_dataset("synthetic").info


def randomise_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2, generator=g); m.running_var.uniform_(0.5, 1.5, generator=g)
    return model.eval()


@pytest.mark.parametrize("name", ["vgg_small", "resnet8", "vgg11_bn", "resnet18", "mobilenet_v2", "densenet121"])
def test_builds_with_completeness_on_every_node(name):
    torch.manual_seed(0)
    model = randomise_bn(build_model(name, INFO)).double()  # float64: completeness is exact, not float32 rounding
    images, refs = torch.randn(2, 1, 28, 28, dtype=torch.float64), torch.randn(3, 1, 28, 28, dtype=torch.float64)
    builder = AtGCBuilder(model, refs, chunk=len(images) * len(refs))   # one block of the two images, no filler
    batch = builder(images)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert len(batch.layers) == n_convs + 1  # every conv is a node type, plus the input
    for layer in batch.layers[1:]:
        want = (batch.outputs[layer] - batch.ref_outputs[layer]).double()
        got = batch.incoming(layer).double()
        scale = want.abs().max().clamp_min(1e-12)
        assert ((got - want).abs().max() / scale) < 1e-4, (name, layer)
    # every conv has at least one source, and residual nets have convs with more than one
    assert all(builder.layer(l).sources for l in batch.layers[1:])
    if name in ("resnet8", "resnet18", "mobilenet_v2"):
        assert max(len(builder.layer(l).sources) for l in batch.layers[1:]) >= 2


def test_identity_shortcuts_chain_over_blocks():
    builder = AtGCBuilder(build_model("resnet20", INFO).eval(), torch.randn(2, 1, 28, 28))
    # the third block of the first stage is reached by the stem through two identity shortcuts
    assert "stem_0" in builder.layer("stages_2_conv1").sources


class SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Sigmoid())
    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h * self.gate(h)).mean((2, 3))


class Attention(nn.Module):
    def __init__(self):
        super().__init__(); self.a, self.b = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3)
    def forward(self, x):
        h = self.a(x); n, c, hh, ww = h.shape
        q = h.flatten(2)
        att = torch.softmax(q.transpose(1, 2) @ q, -1)
        return self.b((q @ att).view(n, c, hh, ww))


@pytest.mark.parametrize("model, message", [
    (SE(), "unsupported operation 'mul'"),
    (Attention(), "unsupported operation"),
    (nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), "has no Conv2d layer"),
])
def test_unsupported_models_are_refused(model, message):
    with pytest.raises(AgicError, match=message):
        AtGCBuilder(model, torch.randn(2, 1, 28, 28))


def test_images_or_references_that_do_not_fit():
    model = build_model("vgg_small", INFO).eval()
    with pytest.raises(AgicError, match=r"references have shape \(2, 3, 28, 28\); "
                                        r"the model's first conv takes \(N, 1, H, W\)"):
        AtGCBuilder(model, torch.randn(2, 3, 28, 28))
    builder = AtGCBuilder(model, torch.randn(2, 1, 28, 28))
    with pytest.raises(AgicError, match=r"images of shape \(1, 1, 20, 20\) do not fit the model"):
        builder(torch.randn(1, 1, 20, 20))
    with pytest.raises(AgicError, match="references must be a"):
        AtGCBuilder(model, torch.randn(0, 1, 28, 28))


@pytest.mark.parametrize("args, message", [
    (["--topk", "0"], "topk must be in [1, inf], got 0"),
    (["--refs", "0"], "refs must be in [1, 4096], got 0"),
    (["--split", "dev"], "unknown split 'dev'; valid: train, val, test"),
])
def test_cli_bad_store_settings_write_nothing(args, message, tmp_path):
    res = run_agic("graphs", "--dataset", "synthetic", "--out", tmp_path / "store", *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (tmp_path / "store").exists()


def test_store_of_another_model_is_refused(tmp_path, isolated_cache):
    common = ["graphs", "--dataset", "synthetic", "--epochs", "1", "--n", "10", "--refs", "2", "--shard-size", "5",
              "--out", tmp_path / "store", "--quiet"]
    assert run_agic(*common).returncode == 0
    before = sorted(p.name for p in (tmp_path / "store").iterdir())
    trained = sorted(p.name for p in (isolated_cache / "models").iterdir())
    res = run_agic(*common[:-1], "--model", "resnet8", "--quiet")
    assert (res.returncode == 2 and "holds a graph store built with other settings (model differ: stored ['vgg_small'])"
            in res.stderr), res.stderr
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == before
    assert sorted(p.name for p in (isolated_cache / "models").iterdir()) == trained, "refused after training resnet8"


def test_killed_build_resumes_to_the_same_store(tmp_path, isolated_cache, trained_cnns):
    ("SIGKILL half-way through `agic graphs`, run it again: same checksum as an uninterrupted build, "
     "finished shards kept.")
    common = ["graphs", *SYNTHETIC_CNN, "--n", "120", "--refs", "4", "--shard-size", "10", "--quiet"]
    with_cnn(isolated_cache, trained_cnns)   # the CNN trained already: the kill must land while building
    proc = subprocess.Popen([sys.executable, "-m", "agic", *common, "--out", str(tmp_path / "killed")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 300
    while time.time() < deadline and len(list((tmp_path / "killed").glob("shard-*.json"))) < 3: time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    done = sorted((tmp_path / "killed").glob("shard-*.json"))
    assert 3 <= len(done) < 12, f"the kill came too late to test anything: {len(done)} shards were finished"
    assert not (tmp_path / "killed" / "manifest.json").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    resumed = run_agic(*common, "--out", tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert all((tmp_path / "killed" / n).stat().st_mtime_ns == t
               for n, t in stamps.items()), "finished shards were redone"
    assert run_agic(*common, "--out", tmp_path / "fresh", "--shard-size", "40").returncode == 0
    # recomputed from each store's shards (`agic graphs --checksum`, tested in test_distributed)
    assert GraphStore(tmp_path / "killed").checksum() == GraphStore(tmp_path / "fresh").checksum()
    assert len(GraphStore(tmp_path / "killed")) == 120
