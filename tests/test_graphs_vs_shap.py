"""The At-GC builder equals shap.DeepExplainer's per-channel sums on the same sub-networks (1e-5 relative),
and every node of every graph built satisfies completeness (1e-4 relative)."""
import warnings

import numpy as np
import pytest
import shap
import torch
from torch import nn

from agic.graphs import AtGCBuilder

torch.manual_seed(0)


def cbr(c_in, c_out, **kw):
    return [nn.Conv2d(c_in, c_out, kw.pop("k", 3), padding=kw.pop("p", 1), **kw), nn.BatchNorm2d(c_out), nn.ReLU()]


def randomise_bn(model):
    "BatchNorm statistics away from identity, so folding them is really tested."
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


class SpatialSum(nn.Module):
    def forward(self, x): return x.sum((2, 3))


class Case(nn.Module):
    """front(x) -> the source kernel maps; back(*maps) -> target conv's kernel map.
    forward(x) = back(front(x)): the builder sees the whole model, shap sees only back (+ spatial sum)."""
    def forward(self, x): return self.back(*self.front(x))


class VGGBlock(Case):  # conv-BN-ReLU, max-pool, conv-BN-ReLU; no bias on the second
    sources, target = ["a_0"], "b_0"
    def __init__(self):
        super().__init__(); self.a = nn.Sequential(*cbr(1, 6)); self.pool = nn.MaxPool2d(2); self.b = nn.Sequential(
            *cbr(6, 5, bias=False))
    def front(self, x): return [self.a(x)]
    def back(self, a): return self.b(self.pool(a))


class AvgPoolStride2(Case):  # average pool, then a stride-2 conv with bias
    sources, target = ["a_0"], "b_0"
    def __init__(self):
        super().__init__(); self.a = nn.Sequential(*cbr(1, 4)); self.pool = nn.AvgPool2d(2); self.b = nn.Sequential(
            *cbr(4, 6, stride=2))
    def front(self, x): return [self.a(x)]
    def back(self, a): return self.b(self.pool(a))


class IdentityBlock(Case):  # stem -> [conv1 -> conv2(no act)] + identity -> ReLU -> next conv
    sources, target = ["stem_0", "conv2_0"], "nxt_0"
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*cbr(1, 4)); self.conv1 = nn.Sequential(*cbr(4, 4))
        self.conv2 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.relu = nn.ReLU(); self.nxt = nn.Sequential(*cbr(4, 5))
    def front(self, x):
        s = self.stem(x); return [s, self.conv2(self.conv1(s))]
    def back(self, s, r): return self.nxt(self.relu(r + s))


class ProjectionBlock(Case):  # stride-2 block whose shortcut is a 1x1 conv + BN (a kernel layer of its own)
    sources, target = ["conv2_0", "proj_0"], "nxt_0"
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*cbr(1, 4)); self.conv1 = nn.Sequential(*cbr(4, 6, stride=2))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6))
        self.proj = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6))
        self.relu = nn.ReLU(); self.nxt = nn.Sequential(*cbr(6, 3))
    def front(self, x):
        s = self.stem(x); return [self.conv2(self.conv1(s)), self.proj(s)]
    def back(self, r, p): return self.nxt(self.relu(r + p))


class ChainedIdentity(Case):  # two identity blocks: the stem reaches the conv after the second block
    sources, target = ["stem_0", "b1_1_0", "b2_1_0"], "nxt_0"
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*cbr(1, 4))
        self.b1 = nn.Sequential(nn.Sequential(*cbr(4, 4)),
                                nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)))
        self.b2 = nn.Sequential(nn.Sequential(*cbr(4, 4)),
                                nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)))
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU(); self.nxt = nn.Sequential(*cbr(4, 3))
    def front(self, x):
        s = self.stem(x); r1 = self.b1(s); h = torch.relu(r1 + s); return [s, r1, self.b2(h)]
    def back(self, s, r1, r2): return self.nxt(self.relu2(r2 + self.relu1(r1 + s)))


class ConcatBlock(Case):  # two branches concatenated along channels
    sources, target = ["a_0", "b_0"], "c_0"
    def __init__(self):
        super().__init__(); self.a = nn.Sequential(*cbr(1, 3)); self.b = nn.Sequential(
            *cbr(1, 4, k=5, p=2)); self.c = nn.Sequential(*cbr(7, 5))
    def front(self, x): return [self.a(x), self.b(x)]
    def back(self, a, b): return self.c(torch.cat([a, b], 1))


class Depthwise(Case):  # depthwise conv (groups = channels)
    sources, target = ["a_0"], "dw_0"
    def __init__(self):
        super().__init__(); self.a = nn.Sequential(*cbr(1, 6)); self.dw = nn.Sequential(*cbr(6, 6, groups=6))
    def front(self, x): return [self.a(x)]
    def back(self, a): return self.dw(a)


class Grouped(Case):  # grouped conv, 2 groups, 6 -> 4 channels, dilation 2
    sources, target = ["a_0"], "g_0"
    def __init__(self):
        super().__init__(); self.a = nn.Sequential(*cbr(1, 6)); self.g = nn.Sequential(
            *cbr(6, 4, groups=2, dilation=2, p=2))
    def front(self, x): return [self.a(x)]
    def back(self, a): return self.g(a)


class SumsWithFactors(Case):  # h + h, an alpha, a difference and a number: every operand counted with its factor
    sources, target = ["a_0", "b_0"], "c_0"
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Sequential(*cbr(1, 3)), nn.Sequential(*cbr(1, 3)), nn.Sequential(*cbr(3, 4))
    def front(self, x): return [self.a(x), self.b(x)]
    def back(self, a, b): return self.c(torch.rsub(a + a, torch.add(a, b, alpha=2).sub(b, alpha=0.5) + 1.5, alpha=0.3))


class PoolAfterSum(Case):  # ResNet-9 style: relu(x + bn(conv(x))), then max-pooling, then a conv
    sources, target = ["stem_0", "conv_0"], "nxt_0"
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*cbr(1, 4))
        self.conv = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.relu, self.pool, self.nxt = nn.ReLU(), nn.MaxPool2d(2), nn.Sequential(*cbr(4, 5))
    def front(self, x):
        s = self.stem(x); return [s, self.conv(s)]
    def back(self, s, r): return self.nxt(self.pool(self.relu(s + r)))


class SamePadding(Case):  # padding="same" with an even kernel (PyTorch pads one more at the end) and "valid"
    sources, target = ["a_0"], "b_0"
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 3, 3, padding="valid"), nn.BatchNorm2d(3), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 4, 4, padding="same", dilation=1), nn.BatchNorm2d(4), nn.ReLU())
    def front(self, x): return [self.a(x)]
    def back(self, a): return self.b(a)


CASES = [VGGBlock, AvgPoolStride2, IdentityBlock, ProjectionBlock, ChainedIdentity, ConcatBlock, Depthwise, Grouped,
         SumsWithFactors, PoolAfterSum, SamePadding]


def relative_error(a, b):
    return (a - b).abs().max().item() / b.abs().max().item()


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_equals_shap_deep_explainer(case):
    torch.manual_seed(0)
    model = randomise_bn(case()).double()
    images, refs = torch.randn(3, 1, 12, 12, dtype=torch.float64), torch.randn(4, 1, 12, 12, dtype=torch.float64)
    batch = AtGCBuilder(model, refs.float())(images.float())
    # shap on the sub-network from the source kernel maps to the target's spatially summed kernel map (float64)
    with torch.no_grad(): src_x, src_ref = model.front(images), model.front(refs)
    class Back(nn.Module):
        def __init__(self): super().__init__(); self.m = model
        def forward(self, *maps): return self.m.back(*maps).sum((2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.DeepExplainer(Back(), [t.clone() for t in src_ref])
        values = explainer.shap_values([t.clone() for t in src_x], check_additivity=False)
    values = values if isinstance(values, list) and len(values) == len(src_x) else [values]
    for name, v in zip(case.sources, values):
        expected = torch.as_tensor(np.asarray(v)).sum((2, 3))          # (N, C_src, D): per-channel sums
        got = batch.edges[(name, case.target)].double()
        assert got.shape == expected.shape, (got.shape, expected.shape)
        assert relative_error(got, expected) < 1e-5, (name, relative_error(got, expected))
    # and nothing reaches the target that shap does not know about
    assert sorted(s for s, d in batch.edges if d == case.target) == sorted(case.sources)


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_completeness_on_every_node(case):
    model = randomise_bn(case())
    batch = AtGCBuilder(model, torch.randn(5, 1, 12, 12))(torch.randn(3, 1, 12, 12))
    for layer in batch.layers[1:]:
        want = batch.outputs[layer] - batch.ref_outputs[layer]
        assert relative_error(batch.incoming(layer), want) < 1e-4, layer
