"The pins: settings.ini and environment.yml must agree, and the environment must be what they pin."
import configparser
from importlib.metadata import version, PackageNotFoundError
import re

import yaml
from packaging.requirements import Requirement

from conftest import ROOT


def settings_pins():
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT / "settings.ini")
    d = cfg["DEFAULT"]
    return d["requirements"].split() + d["dev_requirements"].split()


def env_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(x["pip"] for x in env["dependencies"] if isinstance(x, dict) and "pip" in x)
    return [p for p in pip if not p.startswith("-e")], env


def norm(reqs):
    return {Requirement(r).name.lower().replace("_", "-"): str(Requirement(r).specifier) for r in reqs}


def test_settings_and_environment_pin_the_same_versions():
    pins, _ = env_pins()
    assert norm(settings_pins()) == norm(pins)


def test_environment_is_python_311_with_pip():
    _, env = env_pins()
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]


def test_every_requirement_is_an_exact_pin():
    loose = [r for r in settings_pins() if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+]*", r)]
    assert not loose, f"not pinned exactly: {loose}"


def test_required_packages_are_pinned():
    names = set(norm(settings_pins()))
    for needed in ["torch", "torchvision", "torch-geometric", "shap", "seaborn", "papermill", "jupyterlab",
                   "pytest", "tqdm", "nbdev", "execnb", "fastcore", "ghapi"]:
        assert needed in names, needed
    assert norm(settings_pins())["torch"] == "==2.14.1" and norm(settings_pins())["torchvision"] == "==0.29.1"


def test_installed_versions_match_the_pins():
    wrong = {}
    for name, spec in norm(settings_pins()).items():
        try: got = version(name)
        except PackageNotFoundError: got = None
        if got is None or got.split("+")[0] != spec.lstrip("="):
            wrong[name] = (spec, got)
    assert not wrong, f"installed versions differ from the pins: {wrong}"


def test_reading_a_notebook_compiles_no_grammar():
    """`make setup` removes rfc3987-syntax (installed by jupyter-events' extra): jsonschema, under nbformat and
    papermill, would compile its 38 grammars in every process that reads a notebook, seconds each time."""
    import subprocess, sys
    code = "import sys, nbformat; print('rfc3987_syntax' in sys.modules, 'lark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"], f"nbformat's import loaded the IRI grammars (rfc3987_syntax, lark): {out}"
