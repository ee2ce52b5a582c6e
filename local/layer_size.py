"""Print the unzipped size of the built layer (`sam build`'s .aws-sam/build/SupportLayer) and its largest packages.

Lambda allows 250 MB unzipped for a function and its layers together; the target for this layer is 50 MB.
`make build` prints it; `python -m local.layer_size [BUILD_DIR]` prints any build's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from local.template import REPO

TARGET_BYTES = 50_000_000  # decimal megabytes, the stricter reading


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def package_sizes(site: Path) -> dict[str, int]:
    """Bytes per top-level entry of the layer's python/ folder (a package, a module, or a *.dist-info)."""
    sizes: dict[str, int] = {}
    for entry in site.iterdir():
        name = entry.name.split("-")[0] if entry.name.endswith(".dist-info") else entry.name
        sizes[name] = sizes.get(name, 0) + (tree_size(entry) if entry.is_dir() else entry.stat().st_size)
    return sizes


def main(argv: list[str]) -> int:
    build = Path(argv[0]) if argv else REPO / ".aws-sam" / "build"
    layer = build / "SupportLayer"
    if not (layer / "python").is_dir():
        print(f"no built layer in {layer}: run make build first", file=sys.stderr)
        return 1
    total = tree_size(layer)
    verdict = "within" if total <= TARGET_BYTES else "OVER"
    print(f"SupportLayer unzipped: {total / 1e6:.1f} MB ({verdict} the {TARGET_BYTES / 1e6:.1f} MB target)")
    for name, size in sorted(package_sizes(layer / "python").items(), key=lambda item: -item[1])[:8]:
        print(f"  {size / 1e6:6.1f} MB  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
