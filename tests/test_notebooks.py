"""Every notebook runs top to bottom as a test, as `nbdev_test` runs it (the `notest` cells skipped, `IN_TEST=1`, so
the experiment notebooks take their quick path): one test per notebook, so that pytest-xdist spreads them over the
workers of `make test`. `04_pruning` is left to tests/test_pruning.py, which runs it with papermill."""
import pytest
from nbdev.config import get_config
from nbdev import test as nbdev_test   # (not `import test_nb`: pytest would collect it as a test)

from conftest import EXPERIMENT_NOTEBOOKS as SLOW, ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("04_pruning"))


def test_every_notebook_is_here():
    assert len(NOTEBOOKS) >= 20 and "03_graphs.ipynb" in NOTEBOOKS and "10_walkthrough.ipynb" in NOTEBOOKS, NOTEBOOKS


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith(SLOW) else n
                                  for n in NOTEBOOKS])
def test_notebook_runs(name, monkeypatch, request):
    monkeypatch.setenv("IN_TEST", "1")      # test_nb sets it too; monkeypatch takes it back afterwards
    if name.startswith(SLOW): request.getfixturevalue("experiment_cache")   # their one cache, as `make figures` runs
    ok, seconds = nbdev_test.test_nb(ROOT / "nbs" / name, skip_flags=get_config().tst_flags.split(), basepath=ROOT)
    assert ok, f"{name} failed after {seconds:.0f} s (its traceback is above)"
