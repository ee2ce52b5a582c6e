"""Cold import of each built handler, with boto3 in the layer and with the Lambda runtime's boto3 (what deploys).

What a cold start pays before the first event: importing the function's `app` module in a fresh interpreter. The
handlers come from the x86_64 build (`make build-x86_64`, .aws-sam/build-x86_64: the same files as the deployed
arm64 build, with libraries this machine can load), run as `python -I -S` with only build folders on sys.path, as
in Lambda. The boto3 family (boto3, botocore, s3transfer and their dependencies, the versions of the development
lock) is copied into a folder of its own, put on sys.path:

- `runtime` (deployed): after the layer, where the Lambda runtime keeps its copy (/var/runtime comes after /opt);
- `bundled`: before the layer's other packages, as if the layer carried it.

Usage: python -m bench.cold_import [--runs N]. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from local.layer_size import tree_size
from local.template import REPO

BUILD = REPO / ".aws-sam" / "build-x86_64"
BOTO = ("boto3", "botocore", "s3transfer", "dateutil", "python_dateutil", "six", "urllib3")
SITE = Path(__import__("boto3").__file__).resolve().parent.parent

PROBE = """
import sys, time
sys.path[:0] = sys.argv[1].split(":")
sys.path.extend(p for p in sys.argv[2].split(":") if p)
started = time.perf_counter()
import app
print(f"{(time.perf_counter() - started) * 1000:.1f} {int('boto3' in sys.modules)}")
"""


def _boto_family(work: Path) -> Path:
    """A folder with the boto3 family only, copied from this environment's site-packages."""
    family = work / "boto"
    family.mkdir()
    for entry in SITE.iterdir():
        if entry.name.split("-")[0].removesuffix(".py") in BOTO:
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, family / entry.name)
    return family


def _time_import(function: Path, first: str, last: str, runs: int) -> tuple[float, bool]:
    times, boto_loaded = [], False
    for _ in range(runs):
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-I", "-S", "-c", PROBE, f"{function}:{first}", last],
            capture_output=True,
            text=True,
            cwd="/",
            env={
                "POWERTOOLS_SERVICE_NAME": "support",
                "POWERTOOLS_METRICS_NAMESPACE": "SupportDesk",
                "AWS_DEFAULT_REGION": "us-east-1",
                "DATABASE_URL": "postgresql://unused.invalid/x",
                "VISITOR_TOKEN_SECRET": "bench-visitor-key-" + "x" * 32,
            },
            check=True,
        )
        ms, loaded = done.stdout.split()
        times.append(float(ms))
        boto_loaded = boto_loaded or loaded == "1"
    return statistics.median(times), boto_loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler and variant")
    args = parser.parse_args()
    if not (BUILD / "SupportLayer" / "python").is_dir():
        raise SystemExit("no x86_64 build: run make build-x86_64 first")
    functions = sorted(p for p in BUILD.iterdir() if (p / "app.py").is_file())
    layer = BUILD / "SupportLayer" / "python"
    with tempfile.TemporaryDirectory() as tmp:
        family = _boto_family(Path(tmp))
        slim_mb = tree_size(BUILD / "SupportLayer") / 1e6
        family_mb = tree_size(family) / 1e6
        print(f"layer unzipped: {slim_mb:.1f} MB as built; {slim_mb + family_mb:.1f} MB if it carried the boto3 family")
        print(f"({args.runs} fresh interpreters per cell, median)")
        print()
        print("| function | runtime's boto3, deployed (ms) | boto3 in the layer (ms) | imports boto3 at cold start |")
        print("|---|---:|---:|---|")
        for function in functions:
            deployed, loaded = _time_import(function, str(layer), str(family), args.runs)
            bundled, _ = _time_import(function, f"{family}:{layer}", "", args.runs)
            print(f"| {function.name} | {deployed:.0f} | {bundled:.0f} | {'yes' if loaded else 'no'} |")


if __name__ == "__main__":
    main()
