"""torchrun on CPU (gloo, 2 processes) and killed jobs: graph stores and training as users run them, from the shell.

Each test starts real processes; a kill is a real SIGKILL. Small synthetic data keeps them to seconds."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import ROOT, SYNTHETIC_CNN as MODEL, with_cnn

pytestmark = pytest.mark.slow   # real processes, real kills: 15-45 s each

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
STORE = ["--refs", "4", "--topk", "4"]


def agic(*args, torchrun=False, timeout=600, env=None):
    "Run `agic ARGS` (or under torchrun with 2 processes); return the CompletedProcess."
    cmd = (TORCHRUN if torchrun else [sys.executable]) + ["-m", "agic", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})


def result(p) -> dict:
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])


def test_two_processes_build_the_same_store_as_one(tmp_path, isolated_cache, trained_cnns):
    with_cnn(isolated_cache, trained_cnns)
    common = ["graphs", *MODEL, "--split", "train", "--images", 96, *STORE, "--shard-size", 16, "--quiet"]
    one = result(agic(*common, "--out", tmp_path / "one"))
    two = result(agic(*common, "--out", tmp_path / "two", torchrun=True))
    assert two["processes"] == 2 and one["processes"] == 1
    assert two["checksum"] == one["checksum"] and two["n_graphs"] == 96
    # recomputed from the shards
    assert result(agic("graphs", "--checksum", tmp_path / "two"))["checksum"] == one["checksum"]
    shards = sorted(p.name for p in (tmp_path / "two").glob("shard-*.pt"))
    assert len(shards) == 6 and shards == sorted(p.name for p in (tmp_path / "one").glob("shard-*.pt"))
    print(f"1 process: {one['graphs_per_s']} graphs/s, 2 processes: {two['graphs_per_s']} graphs/s, "
          f"{one['bytes_per_graph']} bytes/graph")


def test_the_checksum_ignores_shard_size_and_process_count(tmp_path, isolated_cache, trained_cnns):
    "Every graph's values depend on its image alone: not on which images share its shard or batch, nor on the ranks."
    with_cnn(isolated_cache, trained_cnns)
    common = ["graphs", *MODEL, "--split", "train", "--images", 20, *STORE, "--quiet"]
    sums = {size: result(agic(*common, "--shard-size", size, "--out", tmp_path / f"s{size}"))["checksum"]
            for size in (1, 7, 20)}   # each image alone, shards with a remainder, one shard for all
    sums["7, 2 processes"] = result(agic(*common, "--shard-size", 7, "--out", tmp_path / "two",
                                         torchrun=True))["checksum"]
    assert len(set(sums.values())) == 1, sums


TRAIN = [*MODEL, "--images", 64, *STORE, "--hidden", 16, "--batch-size", 16, "--quiet"]


@pytest.mark.parametrize("command, extra, curve", [("pretrain", ["--dgi-epochs", 3], "loss_curve"),
                                                   ("sa", ["--dgi-epochs", 2, "--sa-epochs", 3], "curve")])
def test_two_processes_train_like_one_with_the_same_global_batch(command, extra, curve, tmp_path, monkeypatch,
                                                                 trained_cnns):
    runs = {}
    with_cnn(tmp_path / "cache1", trained_cnns)   # pretrain, 2 processes: rank 0 trains the CNN, the other waits
    for n in (1, 2):
        if command == "sa" and n == 2:   # the very same CNN, store and DGI encoder: SA's own training is compared
            shutil.copytree(tmp_path / "cache1", tmp_path / "cache2", ignore=lambda d, names: {"scoring"} & set(names))
        monkeypatch.setenv("AGIC_CACHE", str(tmp_path / f"cache{n}"))
        runs[n] = result(agic(command, *TRAIN, *extra, torchrun=n == 2))
    assert runs[2]["processes"] == 2 and len(runs[1][curve]) == len(runs[2][curve]) == 3
    loss = lambda r: [c["loss"] if isinstance(c, dict) else c for c in r[curve]]
    # same global batches (SA: gates and BatchNorm statistics from the global batch); what differs is each process's
    # own random draws (DGI's corruption, dropout)
    for a, b in zip(loss(runs[1]), loss(runs[2])): assert abs(a - b) <= 0.05 * a, (loss(runs[1]), loss(runs[2]))
    assert loss(runs[2])[-1] < loss(runs[2])[0]


def _kill_when(proc, ready, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and not ready():
        if proc.poll() is not None: pytest.fail("the job ended before it could be killed: "
                                                f"{proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    assert ready(), "the job never reached the point to kill it"
    proc.send_signal(signal.SIGKILL); proc.wait()


@pytest.mark.parametrize("command, extra, folder, curve",
                         [("pretrain", ["--dgi-epochs", 4], "encoders", "loss_curve"),
                          ("sa", ["--dgi-epochs", 1, "--sa-epochs", 4], "scoring", "curve")])
def test_killed_training_resumes_to_the_same_result(command, extra, folder, curve, tmp_path, monkeypatch,
                                                     trained_cnns):
    monkeypatch.setenv("AGIC_CACHE", str(with_cnn(tmp_path / "straight", trained_cnns)))
    straight = result(agic(command, *TRAIN, *extra))
    # the very CNN and store made above (for SA, its encoder too): what is killed and resumed is the training
    shutil.copytree(tmp_path / "straight", tmp_path / "killed", ignore=lambda d, names: {folder} & set(names))
    monkeypatch.setenv("AGIC_CACHE", str(tmp_path / "killed"))
    import torch   # now: the first poll below must not pay the import (seconds) while the job runs to its end
    proc = subprocess.Popen([sys.executable, "-m", "agic", command, *map(str, TRAIN), *map(str, extra)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    def epochs_done():
        states = list((tmp_path / "killed" / folder).glob("*.partial/state.pt"))
        return bool(states) and _epochs(states[0]) >= 2
    _kill_when(proc, epochs_done)
    partial = list((tmp_path / "killed" / folder).glob("*.partial"))
    assert partial and not list((tmp_path / "killed" / folder).glob("*/meta.json")), "killed after it had finished"
    assert _epochs(partial[0] / "state.pt") < 4
    resumed = result(agic(command, *TRAIN, *extra))
    assert len(resumed[curve]) == len(straight[curve]) == 4
    assert resumed[curve] == straight[curve]          # one process, random state restored: the very same numbers
    assert not list((tmp_path / "killed" / folder).glob("*.partial"))   # the checkpoint folder is gone once finished


def _epochs(state: Path) -> int:
    import torch
    try: return int(torch.load(state, weights_only=True)["epoch"])
    except Exception: return 0     # being replaced at this very moment


def _workers(torchrun_pid: int) -> dict[int, int]:
    "LOCAL_RANK -> pid of the worker processes under a torchrun process."
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit(): continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != torchrun_pid: continue
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
            if "LOCAL_RANK" in env: out[int(env["LOCAL_RANK"])] = int(proc.name)
        except (OSError, ValueError, IndexError): continue
    return out


def test_a_rank_dying_fails_the_job_clearly_and_a_rerun_keeps_finished_shards(tmp_path, isolated_cache, trained_cnns):
    images, shard = 160, 8   # 20 shards
    common = ["graphs", *MODEL, "--split", "train", "--images", images, *STORE, "--shard-size", shard, "--quiet",
              "--out", tmp_path / "store"]
    with_cnn(isolated_cache, trained_cnns)   # the CNN trained already: the kill must land while building
    proc = subprocess.Popen(TORCHRUN + ["-m", "agic", *map(str, common)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 300
    while time.time() < deadline and len(list((tmp_path / "store").glob("shard-*.json"))) < 3: time.sleep(0.05)
    workers = _workers(proc.pid)
    assert set(workers) == {0, 1}, workers
    os.kill(workers[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "agic: error: rank 0 of 2 stopped by torchrun" in err or "exitcode: -9" in err, err[-3000:]
    assert not (tmp_path / "store" / "manifest.json").exists()
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store").glob("shard-*.pt")
            if (tmp_path / "store" / p.name.replace(".pt", ".json")).exists()}
    assert 3 <= len(done) < images // shard, f"{len(done)} shards were finished: the kill came too late to test it"
    rerun = result(agic(*common, torchrun=True))
    assert all((tmp_path / "store" / n).stat().st_mtime_ns == t
               for n, t in done.items()), "finished shards were built again"
    single = result(agic(*common[:-1], tmp_path / "single"))
    assert rerun["checksum"] == single["checksum"] and rerun["graphs_built"] == images - shard * len(done)


def test_unwritable_output_is_one_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    p = agic("graphs", *MODEL, "--images", 8, *STORE, "--quiet", "--out", tmp_path / "a-file" / "store")
    assert p.returncode == 2 and p.stdout == ""
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agic: error: cannot write the store to"), p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a-file"]   # refused before a CNN was trained
