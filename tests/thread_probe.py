"""How OpenMP's wait policy changes torch's speed alone and beside another job (issue 36): run it alone on an idle
machine, `python tests/thread_probe.py [seconds]`. Each measurement is a fresh process doing vgg_small training steps
(batch 64, float32, every core) for `seconds`; "beside" starts a second process of the same work first (a shared
machine), with the wait policy given for each. Prints steps per second and the ratios, one table."""
import os, subprocess, sys, time

WORK = """
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


def env_with(policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy: env["OMP_WAIT_POLICY"] = policy
    return env


def steps_per_second(policy, seconds, beside=None):
    other = None
    if beside is not None:   # the other job: the same work for longer than the measurement
        other = subprocess.Popen([sys.executable, "-c", WORK, str(seconds * 10)], env=env_with(beside),
                                 stdout=subprocess.DEVNULL)
        time.sleep(3)
    try:
        out = subprocess.run([sys.executable, "-c", WORK, str(seconds)], env=env_with(policy), capture_output=True,
                             text=True, check=True, timeout=seconds * 40)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        if other: other.kill(); other.wait()


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 15
    cases = [("alone", None, None), ("alone", "PASSIVE", None), ("beside a default job", None, ""),
             ("beside a default job", "PASSIVE", ""), ("beside a PASSIVE job", "PASSIVE", "PASSIVE")]
    rows = []
    for where, policy, beside in cases:
        rows.append((where, policy or "(unset)", steps_per_second(policy, seconds, beside)))
        print(f"{rows[-1][0]:<22} OMP_WAIT_POLICY={rows[-1][1]:<8} {rows[-1][2]:7.2f} steps/s", flush=True)
    alone = rows[0][2]
    print("\n| where | this job's OMP_WAIT_POLICY | steps/s | / alone, unset |\n|---|---|---|---|")
    for where, policy, sps in rows: print(f"| {where} | {policy} | {sps:.2f} | {sps / alone:.2f} |")
