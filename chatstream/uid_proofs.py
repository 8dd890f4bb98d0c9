"""Uid proofs: a node's word that it authenticated the connection holding a uid.

A node's CURVE key says which node is speaking, not who is behind each of its
connections: the uid a presence report registers (PROTOCOL.md "Identity") is public
in every message, so a key alone could register anyone's.  A proof is
HMAC-SHA256(K, "uid:" + uid), cut to :data:`PROOF_HEX_DIGITS`, under the uid proof
key K: a secret of its own (``CHAT_KEYS_DIR/uid_proof.secret``, mode 0600; not the
CURVE keys, not Django's SECRET_KEY) that the web nodes and the brokers hold.  A node
computes one for the uid of each connection it identified from its Django session
(web/chat/protocol/identity.py) and sends it with the registration; the broker
checks it once per registration (broker/handlers.py), never per message.

Stdlib only: the broker and the nodes both use it.
"""
import hashlib
import hmac
import secrets
from pathlib import Path

from chatstream import secret_files

KEY_BYTES = 32          # 256 bits: HMAC-SHA256's own strength
PROOF_HEX_DIGITS = 32   # 128 bits: nobody without K forges one, online or off


class ProofKeyError(Exception):
    """The uid proof key file is missing, unreadable or malformed."""


def prove(key, uid):
    """The proof of ``uid`` under ``key`` (bytes): 32 hex digits."""
    mac = hmac.new(key, b"uid:" + uid.encode("ascii"), hashlib.sha256).hexdigest()
    return mac[:PROOF_HEX_DIGITS]


def verify(key, uid, proof):
    """True when ``proof`` (anything a peer sent) is ``uid``'s proof under ``key``."""
    if (proof.__class__ is not str or len(proof) != PROOF_HEX_DIGITS or not proof.isascii()
            or not uid.isascii()):
        return False
    return hmac.compare_digest(prove(key, uid), proof)


def make_key(path):
    """Make ``path`` holding a new random key (mode 0600) unless it exists; True if made."""
    return secret_files.create(path, secrets.token_hex(KEY_BYTES) + "\n")


def read_key(path):
    """The key in ``path`` (bytes); :class:`ProofKeyError` naming the fix when it is
    missing or not what :func:`make_key` writes."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ProofKeyError("uid proof key %s: %s (scripts/keys init makes it; every node "
                            "host and broker host needs the same file, docs/OPERATIONS.md "
                            "\"Keys\")" % (path, exc.strerror or exc)) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES // 2:
        raise ProofKeyError("uid proof key %s holds no key of at least %d hex digits"
                            % (path, KEY_BYTES))
    return key
