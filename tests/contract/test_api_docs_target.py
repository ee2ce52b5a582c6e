"""`make api-docs` (docs/api.md) regenerates the committed OpenAPI documents: run as a newcomer would, it leaves them
exactly as committed (the drift test checks the generator; this checks the make target that runs it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = (
    REPO / "docs" / "openapi.json",
    REPO / "layers" / "support" / "support" / "openapi.json",
    REPO / "docs" / "asyncapi.yaml",
)


def test_make_api_docs_writes_the_committed_documents() -> None:
    before = [path.read_bytes() for path in DOCUMENTS]
    done = subprocess.run(["make", "api-docs"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote docs/openapi.json" in done.stderr and "wrote docs/asyncapi.yaml" in done.stderr
    assert [path.read_bytes() for path in DOCUMENTS] == before
