"""How OpenMP's wait policy changes agic's speed alone and beside another job (issue 36). Run it alone on an idle
machine with a warm cache (`make prune` once first):

    python tests/thread_probe.py [--work cnn|sa|prune] [--seconds S]

Each measurement is a fresh process: `cnn`, vgg_small training steps (batch 64, float32, every core) for S seconds;
`sa`, training the default SA network of `make prune` (vgg_small's cached CNN, At-GCs and encoder, 320 At-GCs, batch
32) for a fixed number of epochs; `prune`, `make prune` itself, warm (every stage read from the cache). "beside" starts
a second CPU-bound process first (the `cnn` work, OpenMP's default policy) as on a shared machine. The wait policies
compared: PASSIVE (agic's default: idle threads sleep) and OpenMP's own default (spin, then sleep), given as an empty
`OMP_WAIT_POLICY` so that neither the Makefile nor `agic.core` fills it in (libgomp then warns once and uses its
default). Prints one Markdown table: the rate (steps/s, batches/s or runs/min) and its ratio to "alone, PASSIVE"."""
import argparse, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CNN = """
import sys, time, torch
from agic.core import use_all_cores
from agic.data import DatasetInfo
from agic.models import build_model
use_all_cores(); torch.manual_seed(0)
net = build_model("vgg_small", DatasetInfo("x", 1, 28, [str(c) for c in range(10)], [0.0], [1.0]))
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
for _ in range(3): step()
seconds, n, t0 = float(sys.argv[1]), 0, time.perf_counter()
while time.perf_counter() - t0 < seconds: step(); n += 1
print(n / (time.perf_counter() - t0))
"""

SA = """
import sys, tempfile, time, torch
from agic.data import load_dataset
from agic.encoder import EncoderConfig, pretrain_dgi
from agic.scoring import SAConfig, train_sa
from agic.store import GraphStore, StoreConfig, default_store_path
from agic.training import TrainConfig, train
splits = load_dataset("fashion-mnist"); tcfg = TrainConfig(model="vgg_small", dataset="fashion-mnist")
net = train(tcfg, splits=splits).model.eval()                        # all three from make prune's cache
store = GraphStore(default_store_path(tcfg.key, StoreConfig(split="train", n=1000, refs=16, topk=8)))
graphs = store.graphs(); ecfg = EncoderConfig(hidden=64, epochs=3)
encoder, _ = pretrain_dgi(store, graphs, ecfg)
epochs, n = int(sys.argv[1]), 320
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    train_sa(encoder, store, graphs[:n], SAConfig(epochs=epochs), splits.info.n_classes, encoder_tag=ecfg.tag,
             cache=tmp, progress=False, cnn=net, splits=splits)
    print(epochs * (n // 32) / (time.perf_counter() - t0))
"""

UNITS = {"cnn": "steps/s", "sa": "batches/s", "prune": "runs/min"}


def env_with(policy):
    "The environment with OMP_WAIT_POLICY=policy; '' leaves OpenMP's own default in force."
    return {**os.environ, "OMP_WAIT_POLICY": policy}


def measure(work, policy, seconds):
    "One fresh process of `work` under `policy`: its rate."
    env = env_with(policy)
    if work == "prune":
        t0 = time.perf_counter()
        subprocess.run(["make", "prune"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return 60 / (time.perf_counter() - t0)
    code, arg = (CNN, seconds) if work == "cnn" else (SA, max(1, round(seconds / 2)))
    out = subprocess.run([sys.executable, "-c", code, str(arg)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rate(work, policy, seconds, beside):
    "`measure`, alone (beside=None) or beside a CPU-bound `cnn` process under policy `beside`."
    other = None
    if beside is not None:   # the other job: the same CNN work, long enough to outlast the measurement
        other = subprocess.Popen([sys.executable, "-c", CNN, "100000"], env=env_with(beside),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
    try: return measure(work, policy, seconds)
    finally:
        if other: other.kill(); other.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", choices=list(UNITS), default="cnn")
    p.add_argument("--seconds", type=float, default=15, help="cnn: seconds per measurement; sa: epochs = seconds / 2")
    a = p.parse_args()
    cases = [("alone", "PASSIVE", None), ("alone", "", None), ("beside a CPU-bound job", "PASSIVE", ""),
             ("beside a CPU-bound job", "", "")]
    rows = []
    for where, policy, beside in cases:
        t0 = time.perf_counter()
        rows.append((where, policy or "(OpenMP default)", rate(a.work, policy, a.seconds, beside)))
        print(f"{where:<24} OMP_WAIT_POLICY={rows[-1][1]:<17} {rows[-1][2]:8.3f} {UNITS[a.work]} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    base = rows[0][2]
    print(f"\n`python tests/thread_probe.py --work {a.work} --seconds {a.seconds:g}`\n")
    print(f"| where | OMP_WAIT_POLICY | {UNITS[a.work]} | / alone, PASSIVE |\n|---|---|---|---|")
    for where, policy, r in rows: print(f"| {where} | {policy} | {r:.3f} | {r / base:.2f} |")
