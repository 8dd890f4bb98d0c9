"""Secret files (Django's secret key, the uid proof key): made once, owner-only.

Stdlib only: scripts/setup, the broker and the nodes all make or read them.
"""
import os
from pathlib import Path


def create(path, text):
    """Make ``path`` holding ``text``, mode 0600 from its first byte, unless it exists
    (a key in use is never replaced); True if made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return True
