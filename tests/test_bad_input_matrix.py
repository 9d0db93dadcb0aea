"""The bad-input matrix: every way in (the command line, papermill parameters, the loaders) refuses bad input with
one clear message, a non-zero exit, and nothing partial left behind.

One row per case: where it enters, what is given, and a piece of the message it must print."""
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT

SYN = ["--model", "vgg_small", "--dataset", "synthetic", "--epochs", "1", "--quiet"]


def agic(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "agic", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=os.environ.copy())


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    "What the cases need: a finished synthetic store, one with a corrupt shard, a resnet8 store, a broken plan."
    root = tmp_path_factory.mktemp("made")
    env = {**os.environ, "AGIC_CACHE": str(root / "cache")}
    def build(out, model="vgg_small"):
        p = subprocess.run([sys.executable, "-m", "agic", "graphs", "--model", model, "--dataset", "synthetic", "--epochs", "1",
                            "--quiet", "--split", "train", "--images", "32", "--refs", "2", "--topk", "4", "--shard-size", "16",
                            "--out", str(root / out)], capture_output=True, text=True, cwd=ROOT, env=env)
        assert p.returncode == 0, p.stderr
    build("store"); build("corrupt"); build("resnet8-store", model="resnet8")
    shard = root / "corrupt" / "shard-00001.pt"
    shard.write_bytes(shard.read_bytes()[:100])
    (root / "empty-images").mkdir()
    (root / "broken.yml").write_text("runs: [{name: a, notebook: nbs/04_pruning.ipynb, parameters: {modle: x}}]")
    (root / "not-yaml.yml").write_text("runs: [1")
    return root


# (id, entry point, arguments, piece of the one-line message)
CLI = [
    ("unknown-model", ["graphs", "--model", "vgg_smol", "--dataset", "synthetic"], "unknown model 'vgg_smol'; valid: vgg_small"),
    ("unknown-dataset", ["graphs", "--dataset", "fmnist"], "unknown data set 'fmnist'; valid: fashion-mnist"),
    ("wrong-type", ["graphs", *SYN, "--images", "many"], "argument --images/--n: invalid int value: 'many'"),
    ("unknown-split", ["graphs", *SYN, "--split", "validation"], "unknown split 'validation'; valid: train, val, test"),
    ("zero-images", ["graphs", *SYN, "--images", "0"], "n must be in [1, inf], got 0"),
    ("too-many-images", ["graphs", *SYN, "--images", "100000"], "n=100000 but the test split of synthetic has"),
    ("out-of-range-refs", ["graphs", *SYN, "--refs", "0"], "refs must be in [1, 4096], got 0"),
    ("training-epochs", ["train", "--dataset", "synthetic", "--epochs", "0"], "epochs must be in [1, 1000], got 0"),
    ("unknown-subcommand", ["prune-everything"], "invalid choice: 'prune-everything'"),
    ("empty-dataset", ["data", "--dataset", "folder:{made}/empty-images"], "empty-images"),
    ("not-a-store", ["graphs", "--checksum", "{made}/empty-images"], "is not a finished graph store: no manifest.json"),
    ("corrupt-shard", ["graphs", "--checksum", "{made}/corrupt"], "shard-00001.pt is missing or corrupt"),
    ("store-of-another-model", ["pretrain", *SYN, "--store", "{made}/resnet8-store"], "holds At-GCs of another CNN (resnet8"),
    ("store-other-settings", ["graphs", *SYN, "--split", "train", "--images", "32", "--refs", "4", "--topk", "4",
                              "--shard-size", "16", "--out", "{made}/store"], "holds a graph store built with other settings (config"),
    ("encoder-batch", ["pretrain", *SYN, "--store", "{made}/store", "--batch-size", "0"], "batch_size must be in [1, inf], got 0"),
    ("sa-sparsity", ["sa", *SYN, "--store", "{made}/store", "--sparsity", "-1"], "sparsity must be in [0.0, 100.0], got -1.0"),
    ("plan-unknown-parameter", ["figures", "--plan", "{made}/broken.yml"], "has no parameter modle; its parameters: model"),
    ("plan-not-yaml", ["figures", "--plan", "{made}/not-yaml.yml"], "is not valid YAML"),
    ("plan-unknown-run", ["figures", "--only", "no_such_run"], "no run named no_such_run in the plan"),
    ("unknown-device", ["graphs", *SYN, "--device", "tpu"], "unknown device 'tpu'; valid: cpu, cuda"),
    ("missing-gpu", ["pretrain", *SYN, "--store", "{made}/store", "--device", "cuda:99"],
     "there is no cuda:99" if torch.cuda.is_available() else "asked for, but PyTorch sees no CUDA GPU on this machine"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_command_line_refuses(args, message, made, isolated_cache):
    args = [a.replace("{made}", str(made)) for a in args]
    before = files(made)
    p = agic(*args)
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agic: error: "), p.stderr[-2000:]   # one line, no traceback
    assert message in err[0], err[0]
    assert p.stdout == ""
    assert files(made) == before                                    # nothing written next to the inputs
    assert not [f for f in files(isolated_cache) if f.startswith("graphs") or f.startswith("encoders") or f.startswith("scoring")]


PAPERMILL = [
    ("pruning-ratio", "04_pruning", {"ratios": [0.0, 1.5]}, "every ratio must be a number in [0, 1), got 1.5"),
    ("pruning-scope", "04_pruning", {"scope": "per_layer"}, "unknown scope 'per_layer'; valid: uniform, global"),
    ("classification-type", "05_classification", {"n_graphs": "many"}, "n_graphs must be an integer >= "),
]


@pytest.mark.parametrize("notebook, parameters, message", [c[1:] for c in PAPERMILL], ids=[c[0] for c in PAPERMILL])
def test_papermill_parameters_are_refused(notebook, parameters, message, tmp_path, monkeypatch):
    import papermill as pm
    monkeypatch.setenv("AGIC_FIGURES", str(tmp_path / "figures"))
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(ROOT / "nbs" / f"{notebook}.ipynb"), str(tmp_path / "out.ipynb"), parameters=parameters,
                            cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
    assert e.value.ename == "AgicError" and message in e.value.evalue, (e.value.ename, e.value.evalue)
    assert files(tmp_path / "figures") == []


def test_loaders_refuse(made, tmp_path):
    "Python entry points: one AgicError each, nothing written."
    import torch
    from agic.core import AgicError
    from agic.scoring import KernelImportance
    from agic.store import GraphStore
    from agic.training import load_state_dict
    cases = [
        (lambda: GraphStore(made / "empty-images"), "is not a finished graph store"),
        (lambda: GraphStore(made / "corrupt").graph(20), "shard-00001.pt is missing or corrupt"),
        (lambda: load_state_dict(made / "corrupt" / "shard-00001.pt"), "truncated or corrupt"),
        (lambda: KernelImportance.load(tmp_path / "nothing.pt"), "no kernel importance at"),
    ]
    imp = KernelImportance(["a"], {"a": "a"}, {"a": torch.ones(2)}, {"a": torch.ones(1, 2)}, "hash-of-one-cnn", 1)
    imp.save(tmp_path / "imp.pt")
    cases.append((lambda: KernelImportance.load(tmp_path / "imp.pt", model_hash="hash-of-another"), "belongs to model hash hash-of-one-cnn"))
    before = files(made) + files(tmp_path)
    for call, message in cases:
        with pytest.raises(AgicError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")): call()
    assert files(made) + files(tmp_path) == before

