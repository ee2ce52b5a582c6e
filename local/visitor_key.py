"""The local visitor token key: the stand-in for the template's VisitorTokenSecret, made on first use under
`.local/` (development only; nothing deployed trusts it)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from local.template import REPO

KEY_FILE = REPO / ".local" / "visitor-token.key"


def visitor_token_secret(path: Path = KEY_FILE) -> str:
    """The key, created (readable by this user only) if there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
