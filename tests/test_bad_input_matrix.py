"""The bad-input matrix: every way in (the command line, papermill parameters, the loaders) refuses bad input with
one clear message, a non-zero exit, and nothing partial left behind.

One row per case: where it enters, what is given, and a piece of the message it must print."""
import json, pickle, shutil
from pathlib import Path

import pytest
import torch

from conftest import ROOT, SYNTHETIC_CNN, call_agic, run_agic, with_cnn

SYN = [*SYNTHETIC_CNN, "--quiet"]
GRAPHS = ["graphs", *SYN, "--split", "train", "--images", "32", "--refs", "2", "--topk", "4", "--shard-size", "16"]


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def made(tmp_path_factory, trained_cnns):
    "What the cases need: a finished synthetic store, one with a corrupt shard, a resnet8 store, a broken plan."
    root = tmp_path_factory.mktemp("made")
    with_cnn(root / "cache", trained_cnns)   # the synthetic CNN trained already (resnet8 is trained here)
    def build(out, model="vgg_small"):
        args = [model if a == "vgg_small" else a for a in GRAPHS]
        p = call_agic(*args, "--out", root / out, env={"AGIC_CACHE": str(root / "cache")})
        assert p.returncode == 0, p.stderr
    build("store"); build("corrupt"); build("resnet8-store", model="resnet8")
    shard = root / "corrupt" / "shard-00001.pt"
    shard.write_bytes(shard.read_bytes()[:100])
    (root / "empty-images").mkdir()
    (root / "broken.yml").write_text("runs: [{name: a, notebook: nbs/04_pruning.ipynb, parameters: {modle: x}}]")
    (root / "not-yaml.yml").write_text("runs: [1")
    damaged_stores(root)
    return root


def damaged_stores(root: Path) -> None:
    "Copies of the finished store, each with one damaged file: what a full disk, a killed copy or a hand edit leaves."
    from agic.core import file_sha256
    def copy(name):
        shutil.copytree(root / "store", root / name); return root / name
    manifest = (root / "store" / "manifest.json").read_bytes()
    (copy("cut-manifest") / "manifest.json").write_bytes(manifest[:len(manifest) // 2])
    (copy("pickled-manifest") / "manifest.json").write_bytes(pickle.dumps(json.loads(manifest)))
    (copy("array-manifest") / "manifest.json").write_text("[1, 2]")
    identity = (root / "store" / "store.json").read_bytes()
    (copy("cut-identity") / "store.json").write_bytes(identity[:len(identity) // 2])
    store = copy("pickled-shard")   # pickled Python objects behind SHA-256s that match: refused all the same
    torch.save({"label": Payload(str(root / "payload-ran"))}, store / "shard-00000.pt")
    sha = file_sha256(store / "shard-00000.pt")
    sidecar, records = json.loads((store / "shard-00000.json").read_text()), json.loads(manifest)
    sidecar["sha256"] = records["shards"][0]["sha256"] = sha
    (store / "shard-00000.json").write_text(json.dumps(sidecar))
    (store / "manifest.json").write_text(json.dumps(records))


class Payload:
    "A pickle that, if ever unpickled, creates a file: the proof that loading never runs it."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (Path(self.marker),))


# (id, entry point, arguments, piece of the one-line message)
CLI = [
    ("unknown-model", ["graphs", "--model", "vgg_smol", "--dataset", "synthetic"],
     "unknown model 'vgg_smol'; valid: vgg_small"),
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
    ("manifest-cut-short", ["graphs", "--checksum", "{made}/cut-manifest"],
     "cut-manifest/manifest.json is damaged (not valid JSON: JSONDecodeError"),
    ("manifest-pickled", ["graphs", "--checksum", "{made}/pickled-manifest"],
     "pickled-manifest/manifest.json is damaged (not valid JSON: UnicodeDecodeError"),
    ("manifest-array", ["graphs", "--checksum", "{made}/array-manifest"],
     "manifest.json is damaged (it holds a JSON array, not a JSON object); run the same 'agic graphs' command"),
    ("shard-pickled", ["graphs", "--checksum", "{made}/pickled-shard"],
     "shard-00000.pt holds pickled Python objects ("),
    ("store-of-another-model", ["pretrain", *SYN, "--store", "{made}/resnet8-store"],
     "holds At-GCs of another CNN (resnet8"),
    ("store-other-settings", ["graphs", *SYN, "--split", "train", "--images", "32", "--refs", "4", "--topk", "4",
                              "--shard-size", "16", "--out", "{made}/store"],
     "holds a graph store built with other settings (config"),
    ("encoder-batch", ["pretrain", *SYN, "--store", "{made}/store", "--batch-size", "0"],
     "batch_size must be in [1, inf], got 0"),
    ("sa-sparsity", ["sa", *SYN, "--store", "{made}/store", "--sparsity", "-1"],
     "sparsity must be in [0.0, 100.0], got -1.0"),
    ("plan-unknown-parameter", ["figures", "--plan", "{made}/broken.yml"],
     "has no parameter modle; its parameters: model"),
    ("plan-not-yaml", ["figures", "--plan", "{made}/not-yaml.yml"], "is not valid YAML"),
    ("plan-unknown-run", ["figures", "--only", "no_such_run"], "no run named no_such_run in the plan"),
    ("unknown-device", ["graphs", *SYN, "--device", "tpu"], "unknown device 'tpu'; valid: cpu, cuda"),
    ("missing-gpu", ["pretrain", *SYN, "--store", "{made}/store", "--device", "cuda:99"],
     "there is no cuda:99" if torch.cuda.is_available() else "asked for, but PyTorch sees no CUDA GPU on this machine"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_command_line_refuses(args, message, made, isolated_cache):
    refuses(args, message, made, isolated_cache)


@pytest.mark.parametrize("case", ["unknown-model", "unknown-subcommand", "shard-pickled"])
def test_command_line_refuses_from_the_shell(case, made, isolated_cache):
    "The same through `python -m agic` in a new process (exit status and stderr as a shell sees them): a few cases."
    args, message = next(c[1:] for c in CLI if c[0] == case)
    refuses(args, message, made, isolated_cache, run=run_agic)


# a build resumed in a damaged store (the CNN is the one the stores were built from: `made`'s cached checkpoint)
DAMAGED_BUILDS = [
    ("identity-cut-short", [*GRAPHS, "--out", "{made}/cut-identity"],
     "cut-identity/store.json is damaged (not valid JSON: JSONDecodeError"),
    ("shard-pickled-build", [*GRAPHS, "--out", "{made}/pickled-shard"],
     "), not a dict of tensors; agic refuses to unpickle them (that could run arbitrary code); delete it and its .json "
     "sidecar, then run the same 'agic graphs' command again"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in DAMAGED_BUILDS], ids=[c[0] for c in DAMAGED_BUILDS])
def test_build_refuses_damaged_store(args, message, made, isolated_cache):
    shutil.copytree(made / "cache", isolated_cache)
    refuses(args, message, made, isolated_cache)


def refuses(args, message, made, isolated_cache, run=call_agic):
    """`agic ARGS` exits with 2 and one line holding `message`, and writes nothing (no pickle of `made` ran); in this
    process (`call_agic`), or with `run=run_agic` as a new one."""
    args = [a.replace("{made}", str(made)) for a in args]
    before = files(made)
    p = run(*args)
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agic: error: "), p.stderr[-2000:]   # one line, no traceback
    assert message in err[0], err[0]
    assert p.stdout == ""
    assert files(made) == before                                    # nothing written next to the inputs
    assert not [f for f in files(isolated_cache)
                if f.startswith("graphs") or f.startswith("encoders") or f.startswith("scoring")]


# the pruning notebook's bad parameters (ratios, scope, n_graphs, seeds, model...) are tested in test_pruning.py
PAPERMILL = [
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
    from agic.importance import KernelImportance
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
    cases.append((lambda: KernelImportance.load(tmp_path / "imp.pt", model_hash="hash-of-another"),
                  "belongs to model hash hash-of-one-cnn"))
    before = files(made) + files(tmp_path)
    for call, message in cases:
        with pytest.raises(AgicError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")): call()
    assert files(made) + files(tmp_path) == before



# (id, file of the store, how it is damaged, graphs the same command builds again)
REPAIRS = [
    ("sidecar-not-json", "shard-00001.json", lambda b: b"{not json", 16),
    ("sidecar-array", "shard-00001.json", lambda b: b"[1, 2]", 16),
    ("sidecar-pickled", "shard-00001.json", lambda b: pickle.dumps(json.loads(b)), 16),
    ("manifest-cut-short", "manifest.json", lambda b: b[:len(b) // 2], 0),
    ("manifest-pickled", "manifest.json", lambda b: pickle.dumps(json.loads(b)), 0),
]


@pytest.mark.parametrize("name, damage, rebuilt", [c[1:] for c in REPAIRS], ids=[c[0] for c in REPAIRS])
def test_same_command_repairs_the_store(name, damage, rebuilt, made, tmp_path, isolated_cache):
    "A damaged sidecar or manifest: the same 'agic graphs' command again makes what was damaged, and counts it."
    shutil.copytree(made / "cache", isolated_cache)                 # the trained CNN, not trained again
    store = tmp_path / "store"
    shutil.copytree(made / "store", store)
    checksum = json.loads((store / "manifest.json").read_text())["checksum"]
    (store / name).write_bytes(damage((store / name).read_bytes()))
    p = call_agic(*GRAPHS, "--out", store)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.splitlines()[-1])
    assert (result["graphs_built"], result["n_graphs"], result["checksum"]) == (rebuilt, 32, checksum), result
    p = call_agic("graphs", "--checksum", store)                     # every shard read back and verified
    assert p.returncode == 0 and json.loads(p.stdout)["checksum"] == checksum, p.stderr[-2000:]


def test_damaged_caches_refuse(made, tmp_path):
    """Damaged cached results (a pretrained encoder, an SA network) and a damaged saved kernel importance: one
    AgicError each, naming the file and what to do; a pickle in them is refused, never run."""
    from agic.core import AgicError
    from agic.encoder import EncoderConfig, pretrain_dgi
    from agic.importance import KernelImportance
    from agic.scoring import SAConfig, train_sa
    from agic.store import GraphStore
    store = GraphStore(made / "store")
    graphs = store.graphs(progress=False)
    ecfg, sa_cfg = EncoderConfig(hidden=8, epochs=1, batch_size=16), SAConfig("label", epochs=1, batch_size=16)
    encoder, _ = pretrain_dgi(store, graphs, ecfg, cache=tmp_path, progress=False)
    train_sa(encoder, store, graphs, sa_cfg, 10, cache=tmp_path, progress=False)
    imp = KernelImportance(["a"], {"a": "a"}, {"a": torch.ones(2)}, {"a": torch.ones(1, 2)}, "hash", 1)
    imp.save(tmp_path / "imp.pt")
    (enc,), (sa,) = (tmp_path / "encoders").iterdir(), (tmp_path / "scoring").iterdir()
    load = {"encoder": lambda: pretrain_dgi(store, graphs, ecfg, cache=tmp_path, progress=False),
            "sa": lambda: train_sa(encoder, store, graphs, sa_cfg, 10, cache=tmp_path, progress=False),
            "importance": lambda: KernelImportance.load(tmp_path / "imp.pt")}
    marker = tmp_path / "payload-ran"
    cut = lambda f: f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    pickled = lambda f: torch.save({"w": Payload(str(marker))}, f)
    array = lambda f: f.write_text("[1, 2]")
    cases = [  # (file, damage, what loads it, pieces of the message)
        (enc / "meta.json", cut, "encoder", ["meta.json is damaged (not valid JSON", f"delete the folder {enc}"]),
        (enc / "meta.json", array, "encoder", ["meta.json is damaged (it holds a JSON array, not a JSON object)"]),
        (enc / "encoder.pt", cut, "encoder", ["encoder.pt is truncated or corrupt", "pretrain the encoder anew"]),
        (enc / "encoder.pt", pickled, "encoder", ["encoder.pt holds pickled Python objects", "refuses to unpickle"]),
        (sa / "meta.json", cut, "sa", ["meta.json is damaged (not valid JSON", f"delete the folder {sa}"]),
        (sa / "sa.pt", cut, "sa", ["sa.pt is truncated or corrupt", "train the SA network anew"]),
        (sa / "sa.pt", pickled, "sa", ["sa.pt holds pickled Python objects", "refuses to unpickle"]),
        (tmp_path / "imp.json", array, "importance", ["imp.json is damaged (it holds a JSON array", "compute it"]),
        (tmp_path / "imp.pt", cut, "importance", ["imp.pt is truncated or corrupt", "compute it again"]),
        (tmp_path / "imp.pt", pickled, "importance", ["imp.pt holds pickled Python objects", "refuses to unpickle"]),
    ]
    for path, damage, what, pieces in cases:
        whole = path.read_bytes()
        damage(path)
        with pytest.raises(AgicError) as e: load[what]()
        assert all(p in str(e.value) for p in pieces), (path.name, str(e.value))
        assert not marker.exists()
        path.write_bytes(whole)
    load["encoder"](); load["sa"](); load["importance"]()           # whole again: read back from the cache
