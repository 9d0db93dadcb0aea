import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


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
