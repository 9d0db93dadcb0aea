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


# test files whose tests share one costly session fixture: one worker runs each file's tests, so the fixture is made
# once (the docs site, built and visited in Chromium; the trained CNN and store of the bad-input matrix)
TOGETHER = ("tests/test_browser.py::", "tests/test_bad_input_matrix.py::")


def pytest_xdist_make_scheduler(config, log):
    """`make test`'s two workers take the other tests one at a time, slowest first, as xdist's `load` does; the tests
    of each file in TOGETHER go to one worker, as one unit. (xdist's `--dist loadgroup` does not group them here: under
    pytest 9 the group names never reach the test ids.)"""
    if config.getvalue("dist") != "load": return None
    from xdist.scheduler import LoadScopeScheduling

    class Together(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((prefix for prefix in TOGETHER if nodeid.startswith(prefix)), nodeid)

    return Together(config, log)
