import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _pin_xdist_worker():
    """Under pytest-xdist (`make test` runs two workers), each worker and every process it starts runs on a core of
    its own: `agic.core.use_all_cores` then gives each one thread, so two workers never fight over both cores."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})


_pin_xdist_worker()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    "Every test gets its own empty cache, so nothing a test writes leaks into cache/ or into another test."
    cache = tmp_path / "cache"
    monkeypatch.setenv("AGIC_CACHE", str(cache))
    return cache


def run_agic(*args, env=None, timeout=600):
    "Run `python -m agic ARGS` as a user would; return the CompletedProcess."
    return subprocess.run([sys.executable, "-m", "agic", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT)


# the CNN the bad-input matrix, the torchrun tests and the killed-build test graph and train on (agic's options)
SYNTHETIC_CNN = ["--model", "vgg_small", "--dataset", "synthetic", "--epochs", "1"]


@pytest.fixture(scope="session")
def trained_cnns(tmp_path_factory) -> Path:
    """The cache's `models` folder holding the CNN of `SYNTHETIC_CNN`, trained once per worker by `agic train`: the
    tests that take it (`with_cnn`) graph and train on it. What they test is building and training on it; CNN training
    under torchrun (rank 0 trains, the other waits) is left to the pretrain case of test_distributed's
    same-global-batch test."""
    cache = tmp_path_factory.mktemp("trained-cnn")
    p = run_agic("train", *SYNTHETIC_CNN, "--quiet", env={"AGIC_CACHE": str(cache)})
    assert p.returncode == 0, p.stderr[-3000:]
    return cache / "models"


def with_cnn(cache: Path, models: Path) -> Path:
    "`cache` with the trained CNN of `SYNTHETIC_CNN` copied in."
    shutil.copytree(models, cache / "models")
    return cache


def call_agic(*args, env=None) -> subprocess.CompletedProcess:
    """`agic ARGS` in this process, as `run_agic` runs it in a new one: `agic.__main__.main` on the same arguments,
    `env` added to the environment and the project as working folder, its exit status and what it printed returned
    the same way (warnings printed to its stderr, every time, as in a fresh process). For the many refusals of the
    bad-input matrix: the Python start-up (torch, PyG) is paid once, not once per case; `run_agic` keeps the rest."""
    import contextlib, io, warnings
    from agic.__main__ import main
    out, err, saved, here = io.StringIO(), io.StringIO(), dict(os.environ), os.getcwd()
    show = lambda message, category, filename, lineno, file=None, line=None: err.write(
        warnings.formatwarning(message, category, filename, lineno, line))
    try:
        os.environ.update(env or {}); os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always"); warnings.showwarning = show
            try: code = main([str(a) for a in args])
            except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(here); os.environ.clear(); os.environ.update(saved)
    return subprocess.CompletedProcess(["agic", *map(str, args)], code, out.getvalue(), err.getvalue())


def project_copy(tmp_path, *names):
    "Copy the named top-level entries of the project into tmp_path (for nbdev commands that rewrite files)."
    for name in names:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    return tmp_path


def pytest_collection_modifyitems(config, items):
    """Slow tests first: under pytest-xdist the longest jobs then start early, and the two workers finish together
    instead of one running the last long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# tests that share something costly, by the start of their ids: one worker runs each group, so it is made once (the
# docs site, built and visited in Chromium; the synthetic CNN, `trained_cnns`, of the bad-input matrix (and its
# stores), the torchrun tests and the killed-build test; the quick CNN and At-GCs the experiment notebooks' quick runs
# and 04's resume test share through one cache, `experiment_cache`)
# the experiment notebooks' quick runs and the walkthrough (by their names' start): half a minute or more each
EXPERIMENT_NOTEBOOKS = ("04", "05", "10")
TOGETHER = {"tests/test_browser.py::": "browser", "tests/test_bad_input_matrix.py::": "synthetic CNN",
            "tests/test_distributed.py::": "synthetic CNN",
            "tests/test_graphs_models.py::test_killed": "synthetic CNN",
            **{f"tests/test_notebooks.py::test_notebook_runs[{n}": "experiment notebooks"
               for n in EXPERIMENT_NOTEBOOKS},
            "tests/test_pruning.py::test_quick_run_resumes": "experiment notebooks"}


@pytest.fixture
def experiment_cache(tmp_path_factory, monkeypatch) -> Path:
    """The one cache of the experiment notebooks' quick runs (as `make figures` runs them, one cache for all): the
    first trains the quick CNN and builds its At-GCs, the others read them. TOGETHER sends their tests to one worker,
    in turn."""
    cache = tmp_path_factory.getbasetemp() / "experiment-notebooks-cache"
    monkeypatch.setenv("AGIC_CACHE", str(cache))
    return cache


def pytest_xdist_make_scheduler(config, log):
    """`make test`'s two workers take the other tests one at a time, slowest first, as xdist's `load` does; the tests
    of each group in TOGETHER go to one worker, as one unit. (xdist's `--dist loadgroup` does not group them here: under
    pytest 9 the group names never reach the test ids.)"""
    if config.getvalue("dist") != "load": return None
    from xdist.scheduler import LoadScopeScheduling

    class Together(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((group for prefix, group in TOGETHER.items() if nodeid.startswith(prefix)), nodeid)

    return Together(config, log)
