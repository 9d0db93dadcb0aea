"""Which settings change which numbers (README, "What reproduces where"). Not a test: run it under the settings to
compare, then compare the files it writes, e.g.

    for env in "" "ATEN_CPU_CAPABILITY=default" "ONEDNN_MAX_CPU_ISA=SSE41" "MKL_CBWR=COMPATIBLE"; do
        env $env .venv/bin/python tests/isa_probe.py "/tmp/probe_${env:-base}"; done
    .venv/bin/python tests/isa_probe.py --compare /tmp/probe_*.pt

Each run records (1) inference: the cached default CNN's logits on 1,000 test images and the At-GCs of 8 of them
(16 references); (2) training: 20 steps of vgg_small (batch 128) in float32 and in bf16 autocast from the same seed."""
import sys, tempfile, torch
from agic.data import load_dataset
from agic.graphs import AtGCBuilder
from agic.training import train

def probe(out: str):
    torch.set_num_threads(2)
    splits = load_dataset("fashion-mnist")
    m = train(progress=False, splits=splits).model.eval()
    x = splits.test.tensors[0][:1000].contiguous(memory_format=torch.channels_last)
    with torch.no_grad(): logits = torch.cat([m(b) for b in x.split(64)])
    g = AtGCBuilder(m, refs=splits.train.tensors[0][:16])(x[:8])
    rec = {"logits": logits, "edges": torch.cat([e.flatten() for e in g.edges.values()])}
    for precision in ("fp32", "bf16"):
        with tempfile.TemporaryDirectory() as d:
            t = train(epochs=1, train_limit=2560, precision=precision, cache=d, progress=False, splits=splits)
        rec[f"trained_{precision}"] = torch.cat([p.detach().flatten() for p in t.model.state_dict().values()
                                                 if p.is_floating_point()])
    torch.save(rec, out + ".pt")

def compare(paths: list[str]):
    runs = {p: torch.load(p) for p in paths}
    base = runs[paths[0]]
    print(f"against {paths[0]}: max relative difference (bit-equal?)")
    for p, r in runs.items():
        cells = [f"{k} {((r[k] - base[k]).abs().max() / base[k].abs().max()).item():.1e} ({torch.equal(r[k], base[k])})"
                 for k in base]
        print(p, " | ".join(cells))

if __name__ == "__main__":
    compare(sys.argv[2:]) if sys.argv[1] == "--compare" else probe(sys.argv[1])
