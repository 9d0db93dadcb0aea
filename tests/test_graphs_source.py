"""The At-GC builder against a second grammar, unlike `test_graphs_generative.py`'s: models written as Python source,
one operation a line, as users write them: in-place forms (`v.relu_()`, `v += w`, `add_`, `mul_`, `inplace=True`),
aliases (`w = v` then an in-place write to `w`), a conv module called twice, keyword arguments
(`torch.cat(tensors=...)`, `torch.add(input=..., other=..., alpha=...)`), scaling by numbers, padding of every mode,
adaptive max pooling, `F.interpolate(size=v.shape[-2:])`, the activations of MobileNetV3 / EfficientNet, random
dropout and products of two maps, at data scales from 1 down to 1e-7.

The truth is the user's model run eagerly, never the builder's trace: the last conv's incoming edges must sum to its
output's difference from the references as the eager model computes it (float64, 1e-6 relative). Every model is built
exactly or refused with one AgicError; never a wrong graph, never another exception.

CI runs a seeded share of 400 models (about 6 s); the full run (2,000 models, about 30 s):

    AGIC_GENERATIVE_MODELS=2000 pytest tests/test_graphs_source.py -s
"""
import os
import random

import torch
import torch.nn.functional as F
from torch import nn

from agic.core import AgicError
from agic.graphs import AtGCBuilder

N_MODELS = int(os.environ.get("AGIC_GENERATIVE_MODELS", "400"))
ACT_MODULES = ["nn.ReLU()", "nn.ReLU(inplace=True)", "nn.Hardswish()", "nn.Hardsigmoid()", "nn.Mish()", "nn.SELU()",
               "nn.CELU(0.7)", "nn.ReLU6(inplace=True)", "nn.SiLU()", "nn.PReLU({c})", "nn.Hardswish(inplace=True)"]
ACT_LINES = ["F.hardswish({v})", "torch.clamp({v}, 0, 6)", "{v}.clamp(min=-1.0, max=1.0)", "F.relu({v}, inplace=True)",
             "torch.relu_({v})", "F.mish({v})", "F.selu({v})", "F.hardsigmoid({v})", "torch.clip({v}, -0.5, 0.5)"]


class Base(nn.Module):
    def __init__(self, modules):
        super().__init__()
        for name, m in modules.items(): setattr(self, name, m)


class Source:
    "A model being written: its lines, its modules (as source) and the shapes of its values."
    def __init__(self, rng):
        self.rng, self.lines, self.mods, self.shapes = rng, [], {}, {}

    def module(self, prefix, src):
        name = f"{prefix}{len(self.mods)}"
        self.mods[name] = src
        return name

    def value(self, shape):
        name = f"v{len(self.shapes)}"
        self.shapes[name] = shape
        return name

    def pick(self, pred=lambda s: True):
        names = [v for v, s in self.shapes.items() if pred(s)]
        recent = names[-3:]
        return self.rng.choice(recent if recent and self.rng.random() < 0.6 else names) if names else None

    def conv(self, v, c_out=None, reuse=False):
        c, h, w = self.shapes[v]
        same = [m for m, src in self.mods.items() if m.startswith("k") and f"nn.Conv2d({c}, " in src]
        if reuse and same:
            name = self.rng.choice(same)
            c_out = int(self.mods[name].split(", ")[1])
        else:
            c_out = c_out or self.rng.randint(1, 4)
            mode = self.rng.choice(["zeros"] * 4 + ["reflect", "replicate", "circular"]) if min(h, w) >= 2 else "zeros"
            name = self.module("k", f"nn.Conv2d({c}, {c_out}, 3, padding=1, padding_mode={mode!r})")
        out = self.value((c_out, h, w))
        self.lines.append(f"{out} = s.{name}({v})")
        return out


def write(seed):
    "The source of a random model and its modules' source, and the input shape and data scale."
    rng = random.Random(seed)
    s = Source(rng)
    c0, h, w = rng.choice([1, 2, 3]), rng.randint(6, 12), rng.randint(6, 12)
    s.shapes["x"] = (c0, h, w)
    s.conv("x")
    for _ in range(rng.randint(3, 10)):
        v = s.pick(); c, h, w = s.shapes[v]
        r = rng.random()
        if r < 0.2: s.conv(v, reuse=rng.random() < 0.1)
        elif r < 0.3:
            m = s.module("act", rng.choice(ACT_MODULES).format(c=c))
            out = s.value((c, h, w)); s.lines.append(f"{out} = s.{m}({v})")
        elif r < 0.4:
            out = s.value((c, h, w)); s.lines.append(f"{out} = " + rng.choice(ACT_LINES).format(v=v))
        elif r < 0.5:   # in place, on its own line: the value (and every alias of it) changes
            u = s.pick(lambda sh: sh == (c, h, w))
            s.lines.append(rng.choice([f"{v}.relu_()", f"{v}.mul_(0.5)", f"{v} += {u}", f"{v}.add_({u})",
                                       f"{v}.sub_({u}, alpha=2.0)", f"{v}.clamp_(-1.0, 1.0)"]))
        elif r < 0.55:
            out = s.value((c, h, w)); s.lines.append(f"{out} = {v}")            # an alias
        elif r < 0.68:
            u = s.pick(lambda sh: sh == (c, h, w)); out = s.value((c, h, w))
            s.lines.append(f"{out} = " + rng.choice([f"{v} + {u}", f"torch.add(input={v}, other={u}, alpha=0.5)",
                                                     f"2 * {v} + {u}", f"{v} / 4 - {u}", f"-{v} + 0.5 * {u}",
                                                     f"{v}.add({u}, alpha=-1.5)", f"{v} * 3"]))
        elif r < 0.74:
            u = s.pick(lambda sh: sh[1:] == (h, w)); out = s.value((c + s.shapes[u][0], h, w))
            s.lines.append(f"{out} = " + rng.choice([f"torch.cat(tensors=[{v}, {u}], dim=1)",
                                                     f"torch.concat([{v}, {u}], 1)", f"torch.cat([{v}, {u}], dim=-3)"]))
        elif r < 0.82 and min(h, w) >= 4:
            kind = rng.choice(["max", "adaptive", "avg"])
            hh, ww = (h // 2, w // 2) if kind != "adaptive" else (rng.randint(2, h), rng.randint(2, w))
            src = {"max": "nn.MaxPool2d(2)", "avg": "nn.AvgPool2d(2)",
                   "adaptive": f"nn.AdaptiveMaxPool2d(({hh}, {ww}))"}
            m = s.module("pool", src[kind]); out = s.value((c, hh, ww)); s.lines.append(f"{out} = s.{m}({v})")
        elif r < 0.88:
            mode = rng.choice(["constant", "reflect", "replicate", "circular"])
            out = s.value((c, h + 2, w + 2))
            if rng.random() < 0.5: s.lines.append(f"{out} = F.pad({v}, (1, 1, 1, 1), mode={mode!r})")
            else:
                pads = ["nn.ZeroPad2d(1)", "nn.ReflectionPad2d(1)", "nn.ConstantPad2d(1, 0.3)"]
                m = s.module("pad", rng.choice(pads))
                s.lines.append(f"{out} = s.{m}({v})")
        elif r < 0.93:
            u = s.pick(); out = s.value((c, *s.shapes[u][1:]))
            s.lines.append(f"{out} = F.interpolate({v}, size={u}.shape[-2:])")
        elif r < 0.96:
            out = s.value((c, h, w)); s.lines.append(f"{out} = F.dropout({v}, 0.3, training=True)")
        elif r >= 0.96:
            u = s.pick(lambda sh: sh == (c, h, w)); out = s.value((c, h, w))
            s.lines.append(f"{out} = {v} * torch.sigmoid({u})")
    last = s.pick(lambda sh: True) if rng.random() < 0.3 else list(s.shapes)[-1]
    s.mods["last"] = f"nn.Conv2d({s.shapes[last][0]}, 2, 3)"
    s.lines.append(f"return s.last({last}).sum((2, 3))")
    scale = rng.choice([1.0, 1.0, 1e-2, 1e-4, 1e-7])
    return s.lines, s.mods, (c0, *s.shapes["x"][1:]), scale


def build(lines, mods, seed):
    "The model the source describes, in float64, with random BatchNorm-free weights of the seed."
    ns = {"torch": torch, "F": F, "nn": nn}
    exec("def forward(s, x):\n" + "".join(f"    {l}\n" for l in lines), ns)
    torch.manual_seed(seed)
    model = type("Written", (Base,), {"forward": ns["forward"]})({k: eval(v, ns) for k, v in mods.items()})
    return model.double().eval()


def check(seed):
    "'exact', 'refused: why' or 'wrong: error' / 'crash: what' for the model written with `seed`."
    lines, mods, shape, scale = write(seed)
    model = build(lines, mods, seed)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, *shape, generator=g, dtype=torch.float64) * scale
    refs = torch.randn(3, *shape, generator=g, dtype=torch.float64) * scale
    try: batch = AtGCBuilder(model, refs, chunk=len(images) * len(refs), device="cpu")(images)   # one block
    except AgicError as e: return "refused: " + str(e).split(";")[0][:90]
    except Exception as e: return f"crash: {type(e).__name__}: {str(e)[:200]}"
    outs = []                                    # the truth: the last conv's output, the model run as written
    hook = model.last.register_forward_hook(lambda m, i, o: outs.append(o.detach().clone()))
    with torch.no_grad(): model(images.clone()); model(refs.clone())
    hook.remove()
    want = outs[0].sum((2, 3)) - outs[1].sum((2, 3)).mean(0)
    largest = max(batch.outputs[l].abs().max().item() for l in batch.layers[1:])   # behind h - h: rounding residue
    error = (batch.incoming("last") - want).abs().max().item() / max(want.abs().max().item(), 1e-6 * largest, 1e-300)
    return "exact" if error <= 1e-6 else f"wrong: error {error:.2e}"


def test_written_models_are_exact_against_the_eager_model_or_refused():
    outcomes = {seed: check(seed) for seed in range(N_MODELS)}
    kinds = {k: sum(o.startswith(k) for o in outcomes.values()) for k in ("exact", "refused", "wrong", "crash")}
    reasons = {}
    for o in outcomes.values():
        if o.startswith("refused"): reasons[o[9:60]] = reasons.get(o[9:60], 0) + 1
    print(f"\n{N_MODELS} written models: {kinds}\nrefusals: " +
          "; ".join(f"{k} ({n})" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:8]))
    bad = {s: (o, write(s)[0]) for s, o in outcomes.items() if o.startswith(("wrong", "crash"))}
    assert not bad, list(bad.items())[:3]
    assert kinds["exact"] >= 0.3 * N_MODELS and kinds["refused"] >= 1
