"""torchvision's architectures, with their `inplace=True` activations, through the At-GC builder: each is built (every
layer's completeness verdict exact or ill-conditioned, never failed, and its graph checked against the model run as
written) or refused with one AgicError that names what it cannot pass (README's support table lists the outcome).
Random weights with random BatchNorm statistics, float64, two images of the synthetic data set against two references,
in one block of exactly those two (the builder's default block would fill 62 copies of the last image)."""
import pytest
import torch
from torch import nn

from agic.core import AgicError
from agic.graphs import AtGCBuilder
from agic.models import build_model

EXPECTED = {   # model -> built, or the text its refusal must contain
    "resnet18": "built", "mobilenet_v2": "built", "regnet_x_400mf": "built", "densenet121": "built",
    "mobilenet_v3_small": "operation 'mul'", "efficientnet_b0": "operation 'mul'", "regnet_y_400mf": "operation 'mul'",
}


def info():
    from agic.data import load_dataset
    return load_dataset("synthetic").info


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_torchvision_models_are_built_or_refused_by_name(name):
    torch.manual_seed(0)
    model = build_model(name, info())
    g = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.normal_(0, 0.2, generator=g); bn.running_var.uniform_(0.5, 1.5, generator=g)
    model = model.double().eval()
    shape = info().input_shape
    x, refs = torch.randn(2, *shape, generator=g).double(), torch.randn(2, *shape, generator=g).double()
    try:
        batch = AtGCBuilder(model, refs, chunk=len(x) * len(refs), device="cpu")(x)   # one block, no filler
    except AgicError as e:
        assert EXPECTED[name] != "built", f"{name}: refused ({e})"
        assert EXPECTED[name] in str(e), f"{name}: refused with {e}"
        return
    assert EXPECTED[name] == "built", f"{name}: built, expected a refusal naming {EXPECTED[name]!r}"
    verdicts = set(batch.completeness().verdict)
    assert verdicts <= {"exact", "ill-conditioned"} and "exact" in verdicts, verdicts
