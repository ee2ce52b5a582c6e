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
    assert {"aws-lambda-powertools", "psycopg", "pydantic"} <= layer.keys()
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


def test_boto3_is_the_runtimes_not_the_layers() -> None:
    # The Lambda runtime provides boto3 and botocore (30 MB that kept the layer over its 50 MB target), and with
    # botocore its urllib3, which the fan-out uses (support.realtime); the tests pin one version of each in the
    # development lock (docs/ARCHITECTURE.md, "What the layer carries").
    layer = _pins(REPO / "layers/support/requirements.txt")
    dev = _pins(REPO / "requirements-dev.lock")
    assert {"boto3", "botocore", "s3transfer", "urllib3"} & layer.keys() == set()
    assert {"boto3", "botocore", "urllib3"} <= dev.keys()


def test_the_layer_lock_suits_both_architectures() -> None:
    # `make lock` resolves for x86_64; sam build downloads the same versions for aarch64, which works only while
    # the lock has no platform markers and no hashes of one platform's wheels.
    text = (REPO / "layers/support/requirements.txt").read_text()
    assert "--hash" not in text
    assert not re.search(r"platform_machine|sys_platform|platform_system", text)
