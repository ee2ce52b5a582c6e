"""The versions tested are the versions deployed: the development environment runs the layer's lock."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_every_layer_dependency_is_installed_at_its_locked_version() -> None:
    layer = _pins(REPO / "layers/support/requirements.txt")
    assert {"aws-lambda-powertools", "psycopg", "pydantic", "boto3"} <= layer.keys()
    installed = {}
    for name in layer:
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            installed[name] = "missing"
    assert installed == layer


def test_the_development_lock_agrees_with_the_layer_lock() -> None:
    layer = _pins(REPO / "layers/support/requirements.txt")
    dev = _pins(REPO / "requirements-dev.lock")
    assert {name: dev.get(name) for name in layer} == layer
