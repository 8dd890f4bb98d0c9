"""The backplane's CURVE keys: make them, and the broker's side of using them.

``python -m broker.keys`` (``scripts/keys``) makes key pairs with
``zmq.auth.create_certificates``, secret files readable by their owner only::

    scripts/keys init [DIR] [--nodes N..]  # a development set and the uid proof key,
                                           # idempotent (scripts/run)
    scripts/keys add-node NAME [DIR]       # node NAME's pair in DIR/nodes/, authorised
    scripts/keys broker NAME --out DIR     # DIR/NAME.key, DIR/NAME.key_secret
    scripts/keys node NAME --out DIR       # the same, for node NAME on another host

The folder layout (``CHAT_KEYS_DIR``, default ``var/keys``) is described in
:mod:`chatstream.config` (``KEY_FILES``) and docs/OPERATIONS.md ("Keys").

Every node has its own key.  The broker is a CURVE server on all three sockets;
:func:`start_authenticator` admits only the public keys in ``authorized_nodes/``,
each of them the key of the node its file is named after (``node2.key`` is
node2's): the ZAP ``User-Id`` of a connection is that node name, and the request
handlers refuse a request that names another node (broker/handlers.py).
"""
import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from chatstream import config as shared, rules, uid_proofs
from chatstream.config import AUTHORIZED_PEERS, LOCAL_NODES

log = logging.getLogger(__name__)

# ZAP domain of the broker's sockets.  It must not be empty: libzmq 4.3 asks
# no authenticator about a CURVE handshake on a socket without a domain and
# admits any client key (configure_curve(domain="*") alone lets an unlisted
# key in).  With ZAP_ENFORCE_DOMAIN a handshake that no authenticator
# answers is refused, not waved through.
ZAP_DOMAIN = "chat"
PEER_ZAP_DOMAIN = "chat-peer"   # the pair's peer link: other keys (chatstream/config.py)
NODE_KEYS = "nodes"             # CHAT_KEYS_DIR/nodes/NAME.key_secret: node NAME's own pair
# An unknown key's handshake reads authorized_nodes/ again (a node just added by
# scripts/node add gets in with no signal): at once when a file was added or removed
# there (the folder's mtime), else at most this often (a key file edited in place), so
# a stranger knocking again and again does not make the broker read files that fast.
# libzmq does not retry a handshake refused by ZAP: the first knock must find the key.
RELOAD_ON_UNKNOWN_KEY_S = 1.0
# Unknown keys remembered so each is logged once, not at every retry of its handshake.
UNKNOWN_KEYS_LOGGED = 1000


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


def add_node(keys_dir, name):
    """Node ``name``'s own key pair in ``keys_dir/nodes/`` and its public key in
    ``authorized_nodes/`` as ``name.key`` (the broker binds the key to that name).
    Makes only what is missing; returns the files made."""
    keys_dir = Path(keys_dir)
    rules.node_name(name)
    made = []
    own = keys_dir / NODE_KEYS
    if not (own / (name + ".key_secret")).exists():
        made += create(own, name)
    authorized = keys_dir / shared.KEY_FILES["authorized_nodes"][1]
    authorized.mkdir(parents=True, exist_ok=True)
    if not (authorized / (name + ".key")).exists():
        # whole or not at all: the broker may read the folder at any moment
        partial = authorized / (name + ".key.partial")
        shutil.copyfile(own / (name + ".key"), partial)
        os.replace(partial, authorized / (name + ".key"))
        made.append(authorized / (name + ".key"))
    return made


def retire_shared_node_key(keys_dir):
    """An older development set shared one node key (``node.key``) among all nodes:
    its authorisation is removed, so no key speaks for every node.  Returns the
    removed file, or None."""
    keys_dir = Path(keys_dir)
    shared_key = keys_dir / shared.KEY_FILES["authorized_nodes"][1] / "node.key"
    if not (shared_key.exists() and (keys_dir / "node.key").exists()
            and shared_key.read_bytes() == (keys_dir / "node.key").read_bytes()):
        return None
    shared_key.unlink()
    log.warning("%s: the node key all nodes shared (node.key) is no longer authorised; each "
                "node now has its own in %s/, which the broker accepts for that node's name "
                "only.  A node on another host that used node.key_secret needs its own: "
                "scripts/keys node NAME --out DIR (docs/OPERATIONS.md \"Keys\")",
                keys_dir, keys_dir / NODE_KEYS)
    return shared_key


def init(keys_dir=shared.KEYS_DIR, nodes=LOCAL_NODES):
    """The development set in ``keys_dir``: a broker pair (also the pair's peer key),
    one authorised key pair per node of ``nodes`` and the uid proof key; an older
    set's shared node key is retired.  Makes only what is missing."""
    keys_dir = Path(keys_dir)
    made = []
    if not (keys_dir / "broker.key_secret").exists():
        made += create(keys_dir, "broker")
    proof_key = keys_dir / shared.KEY_FILES["uid_proof"][1]
    if uid_proofs.make_key(proof_key):
        made.append(proof_key)
    for name in nodes:
        made += add_node(keys_dir, name)
    retire_shared_node_key(keys_dir)
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


def uid_proof_key(cfg):
    """The uid proof key (bytes) of a BrokerConfig with CURVE on: the broker takes a
    member's uid only with its proof (chatstream/uid_proofs.py).  Missing is an error,
    never a silent "accept every uid": :class:`uid_proofs.ProofKeyError`."""
    path, _ = shared.key_path("uid_proof", cfg.keys_dir, cfg.uid_proof_key)
    return uid_proofs.read_key(path)


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


class KeyFolder:
    """The public keys of a folder of ``NAME.key`` files, each the key of ``NAME``:
    the ZAP credentials provider of one domain (``callback``), read at start, on
    :meth:`reload` (SIGHUP) and when an unknown key knocks (at most every
    ``reload_after_s``).  Called from the authenticator's thread; the loop never
    reads it (it sees the name as the frames' ``User-Id``).
    """

    def __init__(self, folder, reload_after_s=RELOAD_ON_UNKNOWN_KEY_S, clock=time.monotonic):
        self.folder = Path(folder)
        self.reload_after_s = reload_after_s
        self.clock = clock
        self.names = {}          # z85 public key (bytes) -> name
        self.loaded_at = None
        self.loaded_mtime = None   # the folder's, when read
        self.unknown = set()     # keys refused and logged once
        if not self.folder.is_dir():
            raise OSError("%s missing: the broker admits the keys there "
                          "(scripts/keys init makes it)" % self.folder)
        self.reload()

    def reload(self):
        """Read the folder again; returns how many keys it admits."""
        names, seen = {}, {}
        self.loaded_mtime = self._mtime()
        for path in sorted(self.folder.glob("*.key")):
            name = path.stem
            try:
                rules.node_name(name)
                public, _ = zmq.auth.load_certificate(path)
            except (rules.RuleError, ValueError, OSError) as exc:
                log.error("%s skipped: %s", path, exc)
                continue
            if public in seen:   # one key for two names would let one node speak for both
                log.error("%s skipped: the same key as %s.key; each node needs its own",
                          path, seen[public])
                names.pop(public, None)
                continue
            seen[public] = name
            names[public] = name
        self.names = names       # one assignment: the authenticator's thread sees old or new
        self.loaded_at = self.clock()
        return len(names)

    def _mtime(self):
        try:
            return os.stat(self.folder).st_mtime_ns
        except OSError:
            return None

    def name_of(self, key):
        """The name of a z85 public key, or None."""
        return self.names.get(key)

    def callback(self, domain, key):
        """Admit ``key`` (z85 bytes) when it is in the folder; read it again first if
        it is not and the last read is older than ``reload_after_s``."""
        if key in self.names:
            return True
        if (self._mtime() != self.loaded_mtime
                or self.clock() - self.loaded_at >= self.reload_after_s):
            self.reload()
            if key in self.names:
                log.info("key of %s admitted (%s read again)", self.names[key], self.folder)
                return True
        if key not in self.unknown and len(self.unknown) < UNKNOWN_KEYS_LOGGED:
            self.unknown.add(key)
            log.warning("refused a CURVE handshake on %s: key %s is not in %s",
                        domain, key.decode("ascii", "replace"), self.folder)
        return False


class NodeAuthenticator(ThreadAuthenticator):
    """A :class:`~zmq.auth.thread.ThreadAuthenticator` whose ``User-Id`` of a node's
    connection is the node's name (its key's file name in ``authorized_nodes/``)."""

    def __init__(self, context, nodes, **kwargs):
        super().__init__(context, **kwargs)
        self.nodes = nodes

    def curve_user_id(self, client_public_key):
        key = z85.encode(client_public_key)
        return self.nodes.name_of(key) or key.decode("ascii")


def start_authenticator(context, authorized_dir):
    """Admit to the context's CURVE sockets only the node keys in ``authorized_dir``,
    each as the node its file is named after.

    A :class:`~zmq.auth.thread.ThreadAuthenticator`: the broker's loop is one
    plain (non-gevent) thread blocked in ``zmq.Poller.poll`` or in a SQLite
    commit, so ZAP requests are answered by the authenticator's own thread at
    any time, with no change to the loop (the base ``Authenticator`` would have
    to be polled by it; the asyncio and ioloop ones need an event loop the broker
    does not run).  It costs nothing per message: ZAP is asked once per handshake.
    """
    nodes = KeyFolder(authorized_dir)
    if not nodes.names:
        log.warning("no node keys in %s: no node can connect until one is added "
                    "(scripts/node add, or scripts/keys add-node)", authorized_dir)
    auth = NodeAuthenticator(context, nodes, log=logging.getLogger("broker.auth"))
    auth.start()
    auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=nodes)
    log.info("CURVE on: %d authorised node keys in %s (%s)", len(nodes.names), authorized_dir,
             ", ".join(sorted(nodes.names.values())))
    return auth


def reload_authorized(auth):
    """Read the authorised node keys again (SIGHUP): new keys admitted, removed ones
    refused at their next handshake."""
    count = auth.nodes.reload()
    log.info("authorised node keys reloaded: %d in %s", count, auth.nodes.folder)


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
    try:
        auth.configure_curve_callback(domain=PEER_ZAP_DOMAIN, credentials_provider=KeyFolder(peers))
    except OSError as exc:
        raise ValueError(str(exc)) from None
    make_server(inbox, secret_file, PEER_ZAP_DOMAIN)
    public, secret = _key_pair(secret_file)
    outbox.curve_serverkey, outbox.curve_publickey, outbox.curve_secretkey = public, public, secret


# --- scripts/keys ------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/keys", description=__doc__.split("\n\n")[0],
                                epilog="Which file goes where: docs/OPERATIONS.md, \"Running a node on "
                                       "another host\".")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="the development set (the broker's pair, one authorised "
                                    "pair per node); idempotent")
    i.add_argument("dir", nargs="?", default=shared.KEYS_DIR)
    i.add_argument("--nodes", nargs="+", default=LOCAL_NODES, metavar="NAME",
                   help="the nodes to make keys for (default: %s)" % " ".join(LOCAL_NODES))
    a = sub.add_parser("add-node", help="node NAME's pair in DIR/nodes/, authorised for NAME "
                                        "(scripts/node add does this)")
    a.add_argument("name")
    a.add_argument("dir", nargs="?", default=shared.KEYS_DIR)
    for kind in ("broker", "node"):
        k = sub.add_parser(kind, help="a new %s key pair NAME.key + NAME.key_secret" % kind)
        k.add_argument("name")
        k.add_argument("--out", required=True, help="folder to write to (made if missing)")
    args = p.parse_args(argv)
    logging.basicConfig(format="scripts/keys: %(message)s")
    try:
        if args.command == "init":
            made = init(args.dir, args.nodes)
        elif args.command == "add-node":
            made = add_node(args.dir, args.name)
        else:
            made = create(args.out, args.name)
    except (FileExistsError, OSError, rules.RuleError) as exc:
        print("scripts/keys: %s" % exc, file=sys.stderr)
        return 1
    for path in made:
        print(path)
    if args.command == "node":
        print("authorise it for node %s: copy %s into the broker host's %s/ under that name "
              "(the broker lets it speak for %s only); give %s (as %s/%s.key_secret, or named "
              "by CHAT_NODE_SECRET_KEY), the broker's broker.key and the uid proof key %s (0600) "
              "to the node host"
              % (args.name, made[0], shared.KEY_FILES["authorized_nodes"][1], args.name, made[1],
                 NODE_KEYS, args.name, shared.KEY_FILES["uid_proof"][1]))
    elif args.command == "broker":
        print("%s stays on the broker host; %s goes to every node host" % (made[1], made[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
