"""Devices: the graph builder, DGI pretraining and SA training compute where `agic.distributed.setup(device=...)` says.

On a machine without a GPU (this project's CI) the check that stands in for one: while they work, the builder, the
store's shard writer, the DGI loss and the SA network create no tensor on the CPU by default (a tensor factory called
from agic without `device=` makes a CPU tensor, which then meets the GPU's tensors), watched with a `TorchFunctionMode`.
The tests marked `gpu` run the same work on a CUDA GPU against the CPU; without one they are listed as skipped, with
the reason, in pytest's summary (`-ra`)."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from conftest import ROOT

AGIC = str(ROOT / "agic") + os.sep
FACTORIES = {torch.arange, torch.zeros, torch.ones, torch.empty, torch.full, torch.tensor, torch.rand, torch.randn,
             torch.randint, torch.eye, torch.linspace}
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine: GPU runs not checked here")


class HostFactories(TorchFunctionMode):
    "Records every tensor factory that agic's code calls without a `device=`: such a tensor lands on the CPU."
    def __init__(self):
        super().__init__(); self.found = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            frame = sys._getframe(1)   # the caller: agic's own code, not torch's internals (a DataLoader's seed)
            if frame.f_code.co_filename.startswith(AGIC):
                self.found.append(f"{func.__name__} in {Path(frame.f_code.co_filename).name}:{frame.f_lineno} "
                                  f"({frame.f_code.co_name})")
        return func(*args, **kwargs)


def test_the_watch_sees_a_cpu_tensor_made_by_agic():
    ("The detector itself: agic's `_param_stats` of the input layer makes a CPU tensor on purpose "
     "(parameters stay on the CPU).")
    from agic.graphs import Layer, _param_stats
    with HostFactories() as watch: _param_stats(Layer("input", "x", None, 3))
    assert watch.found and watch.found[0].startswith("zeros in graphs.py")


# plain, residual, grouped, concatenating
@pytest.mark.parametrize("name", ["vgg_small", "resnet8", "mobilenet_v2", "densenet121"])
def test_building_graphs_makes_no_cpu_tensor(name):
    from agic.data import load_dataset
    from agic.graphs import AtGCBuilder
    from agic.models import build_model
    from agic.store import StoreConfig, _shard_tensors
    torch.manual_seed(0)
    info = load_dataset("synthetic").info
    builder = AtGCBuilder(build_model(name, info).eval(), torch.randn(3, 1, 28, 28), device="cpu")
    images = torch.randn(2, 1, 28, 28)
    with HostFactories() as watch:
        batch = builder(images)
        _shard_tensors(batch, builder, StoreConfig(topk=4), torch.zeros(2, device="cpu"), torch.zeros(2, device="cpu"))
    assert watch.found == [], watch.found


def _cnn_and_images():
    "The synthetic data set and a seeded, untrained resnet8."
    from agic.data import load_dataset
    from agic.models import build_model
    syn = load_dataset("synthetic")
    torch.manual_seed(0)
    return syn, build_model("resnet8", syn.info).eval()


@pytest.fixture
def small_store(tmp_path):
    "A store of 8 synthetic training images (resnet8, R=2, top-4) and its graphs."
    from agic.store import GraphStore, StoreConfig, build_store
    syn, model = _cnn_and_images()
    build_store(tmp_path / "s", model, syn, StoreConfig(split="train", n=8, refs=2, topk=4), progress=False)
    store = GraphStore(tmp_path / "s")
    return store, store.graphs(progress=False)


def test_dgi_and_sa_make_no_cpu_tensor(small_store):
    "DGI's loss (both corruptions), the SA network's loss and their gradients: every tensor from the batch's device."
    from torch_geometric.data import Batch
    from agic.encoder import EncoderConfig, GraphDGI, build_encoder, embed
    from agic.importance import kernel_importance
    from agic.scoring import SANetwork, sa_loss
    store, graphs = small_store
    batch = Batch.from_data_list(graphs)
    dgi = {c: GraphDGI(build_encoder(store, EncoderConfig(hidden=8)), c) for c in ("swap", "shuffle")}
    sa = SANetwork(build_encoder(store, EncoderConfig(hidden=8)), 10)
    with HostFactories() as watch:
        for model in dgi.values(): model(batch, torch.Generator().manual_seed(0)).backward()
        logits, scores = sa(batch)
        sa_loss(logits, scores, batch.y, 0.1).backward()
        embed(dgi["swap"].encoder, graphs); kernel_importance(sa, store, graphs, 10)
    assert watch.found == [], watch.found


def test_results_come_back_on_the_cpu(small_store, tmp_path):
    "Trained and cached models are the same kind of object: returned on the CPU, saved from it."
    from agic.encoder import EncoderConfig, pretrain_dgi
    from agic.scoring import SAConfig, train_sa
    store, graphs = small_store
    encoder, meta = pretrain_dgi(store, graphs, EncoderConfig(hidden=8, epochs=1, batch_size=4), cache=tmp_path,
                                 progress=False)
    syn, model = _cnn_and_images()
    sa, sa_meta = train_sa(encoder, store, graphs, SAConfig(epochs=1, batch_size=4, hidden=8), 10, cache=tmp_path,
                           progress=False, cnn=model, splits=syn)
    assert {p.device.type for p in [*encoder.parameters(), *sa.parameters()]} == {"cpu"}
    assert meta["device"] == sa_meta["device"] == "cpu"
    assert store.manifest["devices"] == ["cpu"]


# ---- on a CUDA GPU (skipped, with the reason, where there is none) ----

@gpu
def test_gpu_builder_agrees_with_the_cpu_and_with_itself():
    from agic.graphs import AtGCBuilder
    syn, model = _cnn_and_images()
    refs, images = syn.train.tensors[0][:8], syn.test.tensors[0][:6]
    cpu, cuda = AtGCBuilder(model, refs, device="cpu")(images), AtGCBuilder(model, refs, device="cuda")
    on_gpu, again = cuda(images), cuda(images)
    for key, e in cpu.edges.items():
        assert on_gpu.edges[key].device.type == "cuda"
        assert torch.equal(on_gpu.edges[key], again.edges[key])                       # deterministic kernels
        scale = e.abs().max().clamp_min(1e-12)
        assert ((on_gpu.edges[key].cpu() - e).abs().max() / scale) < 1e-4, key      # float32 on both, no TF32
    for layer in cpu.layers[1:]:                                                      # completeness on the GPU
        want = on_gpu.outputs[layer] - on_gpu.ref_outputs[layer]
        assert ((on_gpu.incoming(layer) - want).abs().max() / want.abs().max().clamp_min(1e-12)) < 1e-4, layer


@gpu
def test_gpu_builder_under_the_users_tf32():
    ("A user's model on the GPU with TF32 on (cuDNN's default, and matrix products as `set_float32_matmul_precision"
     "('high')` sets them): the builder checks and builds in full float32, and gives the user's settings back.")
    from agic.graphs import AtGCBuilder
    syn, model = _cnn_and_images()
    refs, images = syn.train.tensors[0][:8], syn.test.tensors[0][:6]
    cpu = AtGCBuilder(model, refs, device="cpu")(images)
    was = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        on_gpu = AtGCBuilder(model.cuda(), refs, device="cuda")(images)   # its in-place ReLUs: the trace is a copy
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally: torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = was
    for key, e in cpu.edges.items():
        assert ((on_gpu.edges[key].cpu() - e).abs().max() / e.abs().max().clamp_min(1e-12)) < 1e-4, key


@gpu
def test_gpu_training_follows_setup(tmp_path):
    from agic import distributed
    from agic.encoder import EncoderConfig, pretrain_dgi
    from agic.store import GraphStore, StoreConfig, build_store
    syn, model = _cnn_and_images()
    cfg = StoreConfig(split="train", n=32, refs=4, topk=4, shard_size=16)
    curves = {}
    for device in ("cpu", "cuda"):
        distributed.setup(device=device)
        try:
            build_store(tmp_path / device, model, syn, cfg, progress=False)
            store = GraphStore(tmp_path / device)
            assert store.manifest["devices"] == [device]
            _, meta = pretrain_dgi(store, store.graphs(progress=False),
                                   EncoderConfig(hidden=16, epochs=3, batch_size=8),
                                   cache=tmp_path / f"cache-{device}", progress=False)
            curves[device] = meta["loss_curve"]
            assert meta["device"].startswith(device)
        finally: distributed.teardown()
    for a, b in zip(curves["cpu"], curves["cuda"]): assert abs(a - b) <= 0.05 * a, curves


@pytest.mark.skipif(torch.cuda.device_count() < 2,
                    reason="fewer than 2 CUDA GPUs on this machine: NCCL runs not checked here")
def test_two_gpu_processes_build_the_same_store_as_one(tmp_path):
    run = lambda *pre, out: subprocess.run(
        [sys.executable, *pre, "-m", "agic", "graphs", "--model", "vgg_small", "--dataset",
         "synthetic", "--epochs", "1", "--split", "train", "--images", "64", "--refs", "4",
         "--topk", "4", "--shard-size", "16", "--quiet", "--device", "cuda", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    one, two = run(out=tmp_path / "one"), run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                                              out=tmp_path / "two")
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-2000:], two.stderr[-2000:])
    r1, r2 = (json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1]) for p in (one, two))
    assert r2["processes"] == 2 and r2["device"].startswith("cuda") and r2["checksum"] == r1["checksum"]
