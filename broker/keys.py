"""The backplane's CURVE keys: make them, and the broker's side of using them.

``python -m broker.keys`` (``scripts/keys``) makes key pairs with
``zmq.auth.create_certificates``, secret files readable by their owner only::

    scripts/keys init [DIR]               # a development set, idempotent (scripts/run)
    scripts/keys broker NAME --out DIR    # DIR/NAME.key, DIR/NAME.key_secret
    scripts/keys node NAME --out DIR      # the same, for one node host

The folder layout (``CHAT_KEYS_DIR``, default ``var/keys``) is described in
:mod:`chatstream.config` (``KEY_FILES``) and docs/OPERATIONS.md ("Keys").

The broker is a CURVE server on all three sockets; :func:`start_authenticator`
admits only the node public keys found in ``authorized_nodes/``.
"""
import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from chatstream import config as shared
from chatstream.config import AUTHORIZED_PEERS

log = logging.getLogger(__name__)

# ZAP domain of the broker's sockets.  It must not be empty: libzmq 4.3 asks
# no authenticator about a CURVE handshake on a socket without a domain and
# admits any client key (configure_curve(domain="*") alone lets an unlisted
# key in).  With ZAP_ENFORCE_DOMAIN a handshake that no authenticator
# answers is refused, not waved through.
ZAP_DOMAIN = "chat"
PEER_ZAP_DOMAIN = "chat-peer"   # the pair's peer link: other keys (chatstream/config.py)


class InsecureBind(Exception):
    """The broker has no keys and was asked to listen beyond this host."""


# --- making keys -------------------------------------------------------------------

def create(out_dir, name):
    """A new key pair ``out_dir/name.key`` (public) + ``name.key_secret`` (0600).

    Refuses to overwrite: a replaced key locks out every host holding the old one.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    public, secret = out_dir / (name + ".key"), out_dir / (name + ".key_secret")
    for path in (public, secret):
        if path.exists():
            raise FileExistsError("%s exists; remove it first to replace the key" % path)
    old = os.umask(0o077)     # the secret file is never readable by others, not even briefly
    try:
        zmq.auth.create_certificates(str(out_dir), name, metadata={"name": name})
    finally:
        os.umask(old)
    public.chmod(0o644)
    return public, secret


def init(keys_dir=shared.KEYS_DIR):
    """The development set in ``keys_dir``: a broker pair, one node pair shared by
    the local nodes, and that node key authorised.  Makes only what is missing."""
    keys_dir = Path(keys_dir)
    made = []
    for name in ("broker", "node"):
        if not (keys_dir / (name + ".key_secret")).exists():
            made += create(keys_dir, name)
    authorized = keys_dir / shared.KEY_FILES["authorized_nodes"][1]
    authorized.mkdir(parents=True, exist_ok=True)
    if not (authorized / "node.key").exists():
        shutil.copyfile(keys_dir / "node.key", authorized / "node.key")
        made.append(authorized / "node.key")
    peers = keys_dir / AUTHORIZED_PEERS     # the failover pair shares the broker key
    peers.mkdir(exist_ok=True)
    if not (peers / "broker.key").exists():
        shutil.copyfile(keys_dir / "broker.key", peers / "broker.key")
        made.append(peers / "broker.key")
    return made


# --- the broker's side ----------------------------------------------------------------

def server_files(cfg):
    """``{"broker_secret", "authorized_nodes"}`` paths of a BrokerConfig, or None when
    it has no keys (ValueError when it has half of them, or a named file is missing)."""
    return shared.curve_files({
        "broker_secret": shared.key_path("broker_secret", cfg.keys_dir, cfg.secret_key),
        "authorized_nodes": shared.key_path("authorized_nodes", cfg.keys_dir, cfg.authorized_nodes),
    })


def is_local_endpoint(endpoint):
    """True for an endpoint only this host can reach (loopback tcp, ipc, inproc)."""
    transport, _, address = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def check_plain(endpoints, insecure):
    """Allow plain sockets only on this host, or when asked for (loudly, every start)."""
    public = [ep for ep in endpoints if not is_local_endpoint(ep)]
    if not public:
        log.warning("CURVE is off: no broker keys (scripts/keys init makes them); "
                    "any local process can read and write the broker's sockets")
        return
    if not insecure:
        raise InsecureBind("no CURVE keys, and %s is reachable from other hosts: make keys "
                           "(scripts/keys) or set CHAT_BROKER_INSECURE=1" % ", ".join(public))
    log.error("INSECURE: CHAT_BROKER_INSECURE=1 and no CURVE keys: %s accept anyone who can "
              "reach them, to read every room and inject anything", ", ".join(public))


def start_authenticator(context, authorized_dir):
    """Admit to the context's CURVE sockets only the node keys in ``authorized_dir``.

    A :class:`~zmq.auth.thread.ThreadAuthenticator`: the broker's loop is one
    plain (non-gevent) thread blocked in ``zmq.Poller.poll`` or in a SQLite
    commit, so ZAP requests are answered by the authenticator's own thread at
    any time, with no change to the loop (the base ``Authenticator`` would have
    to be polled by it; the asyncio and ioloop ones need an event loop the broker
    does not run).  It costs nothing per message: ZAP is asked once per handshake.
    """
    keys = zmq.auth.load_certificates(authorized_dir)   # raises on a missing folder
    if not keys:
        log.warning("no node keys in %s: no node can connect until one is added "
                    "(then SIGHUP or restart the broker)", authorized_dir)
    auth = ThreadAuthenticator(context, log=logging.getLogger("broker.auth"))
    auth.start()
    auth.configure_curve(domain=ZAP_DOMAIN, location=str(authorized_dir))
    log.info("CURVE on: %d authorised node keys in %s", len(keys), authorized_dir)
    return auth


def reload_authorized(auth, authorized_dir):
    """Read ``authorized_dir`` again (SIGHUP): new keys admitted, removed ones refused
    at their next handshake."""
    auth.configure_curve(domain=ZAP_DOMAIN, location=str(authorized_dir))
    log.info("authorised node keys reloaded: %d in %s", len(auth.certs.get(ZAP_DOMAIN, {})),
             authorized_dir)


def make_server(sock, secret_file, domain=ZAP_DOMAIN):
    """Make ``sock`` a CURVE server with the broker's key pair (before bind)."""
    public, secret = _key_pair(secret_file)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    sock.zap_domain = domain.encode()
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def _key_pair(secret_file):
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ValueError("%s holds no secret key" % secret_file)
    return public, secret


def make_peer(inbox, outbox, auth, secret_file, keys_dir):
    """CURVE on the pair's peer link: ``inbox`` (ROUTER) admits only the keys in
    ``keys_dir/authorized_peers/``; ``outbox`` (DEALER) is a client of the partner,
    which holds the same key pair."""
    peers = Path(keys_dir) / AUTHORIZED_PEERS
    if not peers.is_dir():
        raise ValueError("%s missing: the pair's peer link admits the keys there "
                         "(scripts/keys init makes it)" % peers)
    auth.configure_curve(domain=PEER_ZAP_DOMAIN, location=str(peers))
    make_server(inbox, secret_file, PEER_ZAP_DOMAIN)
    public, secret = _key_pair(secret_file)
    outbox.curve_serverkey, outbox.curve_publickey, outbox.curve_secretkey = public, public, secret


# --- scripts/keys ------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/keys", description=__doc__.split("\n\n")[0],
                                epilog="Which file goes where: docs/OPERATIONS.md, \"Running a node on "
                                       "another host\".")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="the development set (broker, node, node authorised); idempotent")
    i.add_argument("dir", nargs="?", default=shared.KEYS_DIR)
    for kind in ("broker", "node"):
        k = sub.add_parser(kind, help="a new %s key pair NAME.key + NAME.key_secret" % kind)
        k.add_argument("name")
        k.add_argument("--out", required=True, help="folder to write to (made if missing)")
    args = p.parse_args(argv)
    try:
        made = init(args.dir) if args.command == "init" else create(args.out, args.name)
    except (FileExistsError, OSError) as exc:
        print("scripts/keys: %s" % exc, file=sys.stderr)
        return 1
    for path in made:
        print(path)
    if args.command == "node":
        print("authorise it: copy %s into the broker host's %s/; give %s and the broker's "
              "broker.key to the node host" % (made[0], shared.KEY_FILES["authorized_nodes"][1], made[1]))
    elif args.command == "broker":
        print("%s stays on the broker host; %s goes to every node host" % (made[1], made[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
