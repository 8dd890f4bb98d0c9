"""Django's SECRET_KEY for the nodes: from the environment, or from a file made once.

Stdlib and chatstream only, so scripts/setup and the test harness can run it before Django is set up:

    python web/chatsite/secret_key.py var/secret_key   # makes the file (0600) unless it exists

Every node of a cluster must use the same key: it signs the session data and
derives the ``uid`` of accounts and guests (chat/protocol/identity.py).
"""
import secrets
import sys
from pathlib import Path

from chatstream import secret_files

KEY_BYTES = 50   # Django's own startproject key has 50 characters; this is more entropy


def read(environ, default_file):
    """The key: ``DJANGO_SECRET_KEY``, else the contents of ``DJANGO_SECRET_KEY_FILE``
    (default ``default_file``) when it exists; None when there is neither."""
    if environ.get("DJANGO_SECRET_KEY"):
        return environ["DJANGO_SECRET_KEY"]
    path = Path(environ.get("DJANGO_SECRET_KEY_FILE") or default_file)
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        if environ.get("DJANGO_SECRET_KEY_FILE"):   # named but absent: say so, do not guess
            raise RuntimeError("DJANGO_SECRET_KEY_FILE=%s does not exist" % path) from None
        return None
    if not key:
        raise RuntimeError("the secret key file %s is empty" % path)
    return key


def ensure(path):
    """Make ``path`` with a new random key (mode 0600) unless it exists; True if made."""
    return secret_files.create(path, secrets.token_urlsafe(KEY_BYTES) + "\n")


def main(argv):
    if len(argv) != 1:
        raise SystemExit("usage: secret_key.py PATH")
    if ensure(argv[0]):
        print("made a new secret key in %s" % argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
