"""How close `make prune`'s CNN training runs to this CPU's arithmetic limit (issue 32: cold `make prune` <= 10 min).
Run it alone on an idle machine:

    python tests/compute_probe.py [--model vgg_small] [--epochs 5]

Counts the CNN's multiply-adds per image (`agic.physical.cost`, torch-pruning's counter), measures this CPU's float32
matrix-multiply rate (2048 x 2048, every core, as agic runs) and the CNN's training-step rate (batch 128, channels-last,
float32: `TrainConfig`'s defaults), each the best of five one-second windows, and prints one Markdown table: FLOP/s of
each, the step's share of the matmul rate, and the seconds `epochs` passes over the training set take at the measured
step rate and at the matmul rate (the floor no kernel tuning can beat). A training FLOP is counted as 3 forward FLOPs
(forward, two backward products)."""
import argparse, time
import torch
from agic.core import use_all_cores
from agic.data import load_dataset
from agic.models import build_model
from agic.physical import cost


def rate(step, windows: int = 5, seconds: float = 1.0) -> float:
    """Calls of `step` per second: the best of `windows` windows of about `seconds` each, after three warm-up calls
    (the best, as timeit takes: a shared or virtual machine only ever slows a window down)."""
    for _ in range(3): step()
    best = 0.0
    for _ in range(windows):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds: step(); n += 1
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg_small"); p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    use_all_cores(); torch.manual_seed(0)
    splits = load_dataset("fashion-mnist"); info, n_train = splits.info, len(splits.train)
    net = build_model(args.model, info, seed=0).to(memory_format=torch.channels_last)
    macs = cost(net.eval(), torch.zeros(1, *info.input_shape))["macs"]   # torch-pruning's counter
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    matmul = rate(lambda: a @ b) * 2 * 2048 ** 3
    x = torch.randn(128, *info.input_shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, info.n_classes, (128,))
    opt = torch.optim.SGD(net.train().parameters(), lr=0.01, momentum=0.9)
    def step(): opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
    train = rate(step) * 128 * 3 * 2 * macs
    work = args.epochs * n_train * 3 * 2 * macs
    print(f"{args.model}: {macs / 1e6:.1f} M multiply-adds per image; {n_train} training images; "
          f"{torch.get_num_threads()} threads; PyTorch capability {torch.backends.cpu.get_cpu_capability()}\n")
    print("| measured | GFLOP/s | share of matmul | seconds for the CNN's training |")
    print("|---|---|---|---|")
    print(f"| float32 matmul 2048 x 2048 | {matmul / 1e9:.1f} | 1.00 | {work / matmul:.0f} (the floor) |")
    print(f"| {args.model} training step, batch 128 | {train / 1e9:.1f} | {train / matmul:.2f} | {work / train:.0f} |")


if __name__ == "__main__":
    main()
