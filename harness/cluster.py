"""A broker, nodes and HAProxy on free loopback ports, each a process in its own group."""
import subprocess
from pathlib import Path

import requests
import zmq
import zmq.auth

from broker import keys
from chatstream import config
from chatstream.config import tcp_endpoint
from .client import new_room
from .processes import PYTHON, ROOT, Proc, base_env, free_port, logs_failures, wait_until

NODES = ("node1", "node2", "node3")
# How long a node may take to answer /healthz 200: about 2 s on a quiet machine (Django,
# the ICU checker, the broker's snapshot); a deadline, not a wait, so it is generous for
# a machine busy with other suites.
NODE_START_S = 60


class Cluster:
    """A broker and any number of nodes (and optionally HAProxy) on free ports.

    :param log_dir: where every process logs.
    :param env: extra environment for every process (e.g. CHAT_HISTORY_SIZE).
    :param curve: a fresh CURVE key set in ``log_dir/keys`` for the broker and
        every node (as scripts/run has); False runs plain sockets (loopback only).

    The nodes share a secret key (``log_dir/secret_key``) and an accounts database:
    SQLite in ``log_dir``, or ``env``'s ``DATABASE_URL``; migrated before the first node.
    """

    def __init__(self, log_dir, env=None, curve=True):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"intake": free_port(), "publish": free_port(), "snapshot": free_port()}
        self.metrics_port = free_port()   # the broker's /metrics (never the default 5558)
        # The balancer's ports are known before any node starts: its origins are the
        # nodes' default CHAT_ALLOWED_ORIGINS (PROTOCOL.md "Origin").
        self.balancer_port, self.tls_port = free_port(), free_port()
        # Without keys the folder stays empty, so broker and nodes run plain.
        self.keys_dir = self.log_dir / ("keys" if curve else "no-keys")
        if curve:
            keys.init(self.keys_dir)
        self.env = base_env({
            "CHAT_KEYS_DIR": str(self.keys_dir),
            "CHAT_BROKER_INTAKE_PORT": str(self.ports["intake"]),
            "CHAT_BROKER_PUBLISH_PORT": str(self.ports["publish"]),
            "CHAT_BROKER_SNAPSHOT_PORT": str(self.ports["snapshot"]),
            "CHAT_BROKER_METRICS_PORT": str(self.metrics_port),
            "CHAT_BROKER_STATE": str(self.log_dir / "broker.sqlite3"),
            "DJANGO_SECRET_KEY_FILE": str(self.log_dir / "secret_key"),
            "CHAT_DATABASE_PATH": str(self.log_dir / "web.sqlite3"),
            "CHAT_BALANCER_PORT": str(self.balancer_port),
            "CHAT_BALANCER_TLS_PORT": str(self.tls_port),
            # Test clients open thousands of sessions from one address; the per-address
            # handshake rate has its own tests (tests/integration/test_hostile_engine.py).
            "CHAT_HANDSHAKE_RATE": "off",
            # ... and act as many people from one address; the per-person limits have
            # their own tests (tests/integration/test_person_limits.py).
            "CHAT_PERSON_RATES": "off",
            **(env or {}),
        })
        self.env.pop("DJANGO_SECRET_KEY", None)   # the file above, as scripts/run has
        self.web_ready = False
        self.broker = None
        self.nodes = {}       # name -> (Proc, port)
        self.balancer = None
        self.archiver = None
        self.procs = []

    # processes

    def address(self, name):
        """The IP address ``name`` (broker, broker2, a node, balancer) serves on:
        loopback here; harness/netns.py gives each its own host's address."""
        return "127.0.0.1"

    def spawn(self, name, argv, env):
        """Start ``argv`` as process ``name`` (harness/netns.py: inside its host's namespace)."""
        proc = Proc(name, argv, env, self.log_dir).start()
        self.procs.append(proc)
        return proc

    def start_broker(self):
        self.broker = self.spawn("broker", [PYTHON, "-m", "broker"], self.env)
        return self.broker

    def start_pair(self):
        """``broker`` (primary) and ``broker2`` (backup) of the failover pair, same
        key pair (nodes trust one broker key); nodes started after it know both."""
        if not hasattr(self, "pair_env"):
            peer = {"broker": free_port(), "broker2": free_port()}
            ports2 = {name: free_port() for name in ("intake", "publish", "snapshot")}
            self.env.update({"CHAT_BROKER2_%s_PORT" % k.upper(): str(v) for k, v in ports2.items()})
            self.pair_env = {
                "broker": {"CHAT_BROKER_ROLE": "primary",
                           "CHAT_BROKER_PEER_BIND": self._peer(peer, "broker"),
                           "CHAT_BROKER_PEER": self._peer(peer, "broker2")},
                "broker2": {"CHAT_BROKER_ROLE": "backup",
                            "CHAT_BROKER_HOST": self.address("broker2"),
                            "CHAT_BROKER_PEER_BIND": self._peer(peer, "broker2"),
                            "CHAT_BROKER_PEER": self._peer(peer, "broker"),
                            "CHAT_BROKER_STATE": str(self.log_dir / "broker2.sqlite3"),
                            "CHAT_BROKER_METRICS_PORT": "0",
                            **{"CHAT_BROKER_%s_PORT" % k.upper(): str(v)
                               for k, v in ports2.items()}}}
        return [self.start_pair_broker(name) for name in ("broker", "broker2")]

    def _peer(self, ports, name):
        return tcp_endpoint(self.address(name), ports[name])

    def start_pair_broker(self, name):
        """(Re)start one broker of the pair (``broker`` or ``broker2``)."""
        proc = self.spawn(name, [PYTHON, "-m", "broker"], {**self.env, **self.pair_env[name]})
        if name == "broker":
            self.broker = proc
        return proc

    def start_second_pair(self):
        """``broker3`` (primary) and ``broker4`` (backup): a second failover pair on ports,
        stores and metrics of its own, the same keys (every pair admits the same node
        keys).  Call it after the first pair's brokers: nodes and the archiver started
        after it spread the rooms over both pairs (CHAT_BROKERS lists them)."""
        if not hasattr(self, "pair2_env"):
            names = ("broker3", "broker4")
            ports = {name: {c: free_port() for c in ("intake", "publish", "snapshot", "peer",
                                                      "metrics")} for name in names}
            self.pair2_ports = ports
            self.pair2_env = {}
            for name, other, role in (("broker3", "broker4", "primary"),
                                      ("broker4", "broker3", "backup")):
                self.pair2_env[name] = {
                    "CHAT_BROKER_ROLE": role, "CHAT_BROKER_HOST": self.address(name),
                    "CHAT_BROKER_PEER_BIND": tcp_endpoint(self.address(name), ports[name]["peer"]),
                    "CHAT_BROKER_PEER": tcp_endpoint(self.address(other), ports[other]["peer"]),
                    "CHAT_BROKER_STATE": str(self.log_dir / ("%s.sqlite3" % name)),
                    "CHAT_BROKER_METRICS_PORT": str(ports[name]["metrics"]),
                    **{"CHAT_BROKER_%s_PORT" % c.upper(): str(ports[name][c])
                       for c in ("intake", "publish", "snapshot")}}
            first = [("broker", self.ports)]
            if hasattr(self, "pair_env"):
                first.append(("broker2", {c: int(self.env["CHAT_BROKER2_%s_PORT" % c.upper()])
                                          for c in ("intake", "publish", "snapshot")}))
            self.env["CHAT_BROKERS"] = ";".join("|".join(
                ",".join(tcp_endpoint(self.address(name), broker_ports[c])
                         for c in ("intake", "publish", "snapshot"))
                for name, broker_ports in pair) for pair in (first, list(ports.items())))
        return [self.start_pair2_broker(name) for name in ("broker3", "broker4")]

    def start_pair2_broker(self, name):
        """(Re)start one broker of the second pair (``broker3`` or ``broker4``)."""
        proc = self.spawn(name, [PYTHON, "-m", "broker"], {**self.env, **self.pair2_env[name]})
        setattr(self, name, proc)
        return proc

    def pair2_metrics_url(self, name):
        return "http://%s:%d" % (self.address(name), self.pair2_ports[name]["metrics"])

    def prepare_web(self):
        """The nodes' secret key and database migrations, once per cluster."""
        if self.web_ready:
            return
        for argv in (["web/chatsite/secret_key.py", self.env["DJANGO_SECRET_KEY_FILE"]],
                     ["web/manage.py", "migrate", "--noinput"]):
            done = subprocess.run([PYTHON, *argv], cwd=ROOT, env=self.env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, "%s failed:\n%s%s" % (argv, done.stdout, done.stderr)
        self.web_ready = True

    def manage(self, *args, env=None, timeout=60):
        """Run ``web/manage.py`` with the nodes' settings (e.g. createsuperuser --noinput)."""
        self.prepare_web()
        return subprocess.run([PYTHON, "web/manage.py", *args], cwd=ROOT, env=dict(self.env, **(env or {})),
                              capture_output=True, text=True, timeout=timeout)

    def start_node(self, name, port=None, env=None, wait=True):
        self.prepare_web()
        port = port or free_port()
        if (self.keys_dir / "broker.key").exists():
            keys.add_node(self.keys_dir, name)    # its own key, as scripts/node add makes it
        node_env = dict(self.env, CHAT_NODE_NAME=name, **(env or {}))
        proc = self.spawn(name, [PYTHON, "web/manage.py", "runnode", "--name", name,
                                 "--host", self.address(name), "--port", str(port)], node_env)
        self.nodes[name] = (proc, port)
        if wait:
            self.wait_healthy(name)
        return proc

    def start_archiver(self, env=None, wait=True):
        """The ``archiver`` program (manage.py runarchiver) on this cluster's broker (the
        pair's both, once started) and database, with its own key; with ``wait``, once it
        follows the broker."""
        self.prepare_web()
        if (self.keys_dir / "broker.key").exists():
            keys.add_node(self.keys_dir, "archiver")
        self.archiver_metrics_port = free_port()
        log = self.log_dir / "archiver.log"        # one file across restarts
        heard = log.read_text(errors="replace").count("following broker") if log.exists() else 0
        self.archiver = self.spawn("archiver", [PYTHON, "web/manage.py", "runarchiver"], dict(
            self.env, CHAT_NODE_NAME="archiver",
            CHAT_ARCHIVER_METRICS_PORT=str(self.archiver_metrics_port), **(env or {})))
        if wait:
            proc = self.archiver
            wait_until(lambda: proc.log().count("following broker") > heard or not proc.alive(), 30,
                       "the archiver following the broker")
            assert proc.alive(), proc.log()[-3000:]
        return self.archiver

    def start_nodes(self, names=NODES, timeout=None):
        """Start the nodes together, then wait until each answers /healthz 200."""
        for name in names:
            self.start_node(name, wait=False)
        for name in names:
            self.wait_healthy(name, timeout)

    def start_balancer(self, tls=False):
        """HAProxy on deploy/haproxy.cfg; with ``tls`` also https on :attr:`tls_url`
        with a self-signed certificate made by scripts/tls-cert, as scripts/run has."""
        env = dict(self.env, BALANCER_BIND="%s:%d" % (self.address("balancer"), self.balancer_port))
        if self.address("balancer") == "127.0.0.1":   # on loopback, from its own address
            env["BALANCER_SOURCE"] = config.BALANCER_SOURCE
        if tls:
            cert = self.log_dir / "tls" / "chat.pem"
            subprocess.run([str(ROOT / "scripts/tls-cert"), str(cert)], check=True,
                           capture_output=True, timeout=60)
            env.update(BALANCER_TLS_BIND="%s:%d" % (self.address("balancer"), self.tls_port),
                       BALANCER_TLS_CERT=str(cert))
        for i, (name, (_, port)) in enumerate(sorted(self.nodes.items()), start=1):
            env["NODE%d_ADDR" % i] = "%s:%d" % (self.address(name), port)
        self.balancer = self.spawn("balancer", ["haproxy", "-W", "-db", "-f",
                                                str(ROOT / "deploy/haproxy.cfg")], env)
        wait_until(lambda: self.health(self.balancer_url) == 200, 20, "balancer health")
        return self.balancer

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()

    def broker_socket(self, context, kind, channel, key="node1"):
        """A pyzmq socket connected to the broker's ``channel``, as a peer holding
        ``key``: a node's own key by its name (node1's by default), any certificate
        file, or None (no key).

        With a key it is a CURVE client of this cluster's broker; the caller closes it.
        """
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if key is not None and (self.keys_dir / "broker.key").exists():
            own = self.keys_dir / keys.NODE_KEYS / ("%s.key_secret" % key)
            secret_file = own if own.exists() else key
            sock.curve_serverkey = zmq.auth.load_certificate(self.keys_dir / "broker.key")[0]
            sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(secret_file)
        sock.connect("tcp://127.0.0.1:%d" % self.ports[channel])
        return sock

    # addresses and health

    def url(self, name):
        return "http://%s:%d" % (self.address(name), self.nodes[name][1])

    @property
    def broker_metrics_url(self):
        return "http://%s:%d" % (self.address("broker"), self.metrics_port)

    def ops_targets(self):
        """CHAT_OPS_TARGETS for this cluster: every node started so far, the broker, and
        the archiver once started."""
        archiver = (["archiver=http://%s:%d" % (self.address("archiver"), self.archiver_metrics_port)]
                    if self.archiver is not None else [])
        return ",".join(["%s=%s" % (name, self.url(name)) for name in sorted(self.nodes)]
                        + ["broker=" + self.broker_metrics_url] + archiver)

    @property
    def balancer_url(self):
        return "http://%s:%d" % (self.address("balancer"), self.balancer_port)

    @property
    def tls_url(self):
        return "https://%s:%d" % (self.address("balancer"), self.tls_port)

    @staticmethod
    def health(url):
        try:
            return requests.get(url + "/healthz", timeout=2).status_code
        except requests.RequestException:
            return None

    def wait_healthy(self, name, timeout=None):
        proc, _ = self.nodes[name]
        def ready():
            assert proc.alive(), "%s exited:\n%s" % (name, proc.log()[-3000:])
            return self.health(self.url(name)) == 200
        wait_until(ready, timeout or NODE_START_S, "%s /healthz 200" % name)

    def logs(self):
        return {p.name: p.log() for p in self.procs}


def start_cluster(log_dir, env=None, nodes=NODES, balancer=True, timeout=None, curve=True):
    """Broker, nodes and (by default) HAProxy, all healthy; the caller stops it.

    :param env: extra environment for every process.
    :param timeout: seconds each node may take to become healthy (``NODE_START_S``).
    :param curve: CURVE keys for all (see :class:`Cluster`).
    """
    cluster = Cluster(log_dir, env=env, curve=curve)
    try:
        cluster.start_broker()
        cluster.start_nodes(nodes, timeout)
        if balancer:
            cluster.start_balancer()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def process_errors(cluster, allow=()):
    """{process name: its tracebacks and ERROR lines} of the cluster's processes that logged
    any not matched by an ``allow`` pattern (harness/processes.py ``log_failures``)."""
    return logs_failures(cluster.procs, allow)


def two_nodes_one_room(make_cluster, client, env=None, names=("a", "b")):
    """Broker + node1 + node2 with one client on each, both in a new room.

    Returns ``(cluster, room, client_on_node1, client_on_node2)``.
    """
    c = make_cluster(env)
    c.start_broker()
    c.start_node("node1")
    c.start_node("node2")
    room = new_room()
    first = client(c.url("node1"), name=names[0])
    second = client(c.url("node2"), name=names[1])
    first.join(room)
    second.join(room)
    return c, room, first, second
