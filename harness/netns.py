"""Hosts in Linux network namespaces (root only): a cluster across real IP addresses.

:class:`Hosts` makes one namespace per host and a "switch" namespace holding a
bridge; each host has one veth pair into that bridge and one address of a
/24 of its own, with ``lo`` up.  Nothing is added to the caller's namespace,
so traffic stays inside these namespaces (and their loopbacks).  Faults:
:meth:`Hosts.cut` takes a host's port on the switch down (the cable pulled),
:meth:`Hosts.partition` blackholes two hosts' addresses from each other only.

:class:`NetnsCluster` is :class:`harness.cluster.Cluster` with every process
started by ``ip netns exec`` inside its host (``ip`` execs the command, so the
pid is the process's own and is signalled as usual), serving on its host's
address.  The test process reaches them from a host of its own:
:meth:`Hosts.inside` moves the calling thread into a namespace (setns is per
thread, and threads started meanwhile, e.g. python-socketio's, stay there).
"""
import contextlib
import ctypes
import os
import random
import secrets
import shutil
import signal
import subprocess

from .cluster import Cluster
from .processes import free_port

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
# Where each process of a cluster runs: broker and broker2 on hosts of their
# own, node1 and node2 together, node3 alone, HAProxy alone, clients alone; a second
# broker pair (Cluster.start_second_pair) on two more hosts.
PLACES = {"broker": "a", "broker2": "b", "node1": "c", "node2": "c", "node3": "d",
          "balancer": "e", "clients": "f", "broker3": "g", "broker4": "h"}
HOSTS = tuple(sorted(set(PLACES.values())))
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args, check=True):
    """Run ``ip ARGS``; a failure raises with ip's own message (unless ``check`` is false)."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), (done.stderr or done.stdout).strip()))
    return done


def unavailable():
    """Why namespaces cannot be made here (a sentence for a skip without root, a failure
    with it), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (running as uid %d)" % os.geteuid()
    if shutil.which("ip") is None:
        return "network namespaces need the ip command (iproute2), which is not installed"
    probe = "chat-probe-%s" % secrets.token_hex(3)
    done = ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return "ip netns does not work here: %s" % (done.stderr or done.stdout).strip()
    ip("netns", "del", probe, check=False)
    return None


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: %s" % os.strerror(err))


class Hosts:
    """Namespaces ``chat-<tag>-<host>`` on one bridge; :meth:`create`, then :meth:`destroy`.

    :param names: the hosts (``a``..``h`` by default).
    """

    def __init__(self, names=HOSTS):
        self.tag = secrets.token_hex(3)                  # unique per run: runs never meet
        self.switch = "chat-%s-sw" % self.tag
        self.ns = {name: "chat-%s-%s" % (self.tag, name) for name in names}
        rng = random.Random()
        self.subnet = "10.%d.%d" % (rng.randrange(100, 250), rng.randrange(1, 255))
        self.addr = {name: "%s.%d" % (self.subnet, 11 + i) for i, name in enumerate(names)}
        self.blackholes = set()                          # (host, address) routes added

    def _port(self, name):
        return "p-%s" % name                             # the host's port on the switch

    def create(self):
        try:
            ip("netns", "add", self.switch)
            ip("-n", self.switch, "link", "set", "lo", "up")
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            for name, ns in self.ns.items():
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", self.switch, "link", "add", self._port(name), "type", "veth",
                   "peer", "name", "eth0", "netns", ns)
                ip("-n", self.switch, "link", "set", self._port(name), "master", "br0", "up")
                ip("-n", ns, "addr", "add", "%s/24" % self.addr[name], "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def pids(self, name):
        """The pids of every process in host ``name``'s namespace."""
        done = ip("netns", "pids", self.ns[name], check=False)
        return [int(pid) for pid in done.stdout.split()]

    def destroy(self):
        """SIGKILL whatever still runs in these namespaces (by pid), then delete them."""
        existing = set(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else set()
        for name, ns in self.ns.items():
            if ns in existing:
                for pid in set(self.pids(name)) - {os.getpid()}:   # a thread of ours may be in it
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for ns in [*self.ns.values(), self.switch]:
            if ns in existing:
                ip("netns", "del", ns, check=False)

    def argv(self, name, argv):
        """``argv`` run inside host ``name``."""
        return ["ip", "netns", "exec", self.ns[name], *argv]

    @contextlib.contextmanager
    def inside(self, name):
        """Run the calling thread (and threads it starts) in host ``name``'s namespace."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(os.path.join(NETNS_DIR, self.ns[name]), os.O_RDONLY)
        try:
            _setns(there)
            try:
                yield self.addr[name]
            finally:
                _setns(here)
        finally:
            os.close(here)
            os.close(there)

    # faults

    def cut(self, name):
        """Host ``name`` off the network: its port on the switch goes down."""
        ip("-n", self.switch, "link", "set", self._port(name), "down")

    def mend(self, name):
        ip("-n", self.switch, "link", "set", self._port(name), "up")

    def partition(self, one, other):
        """``one`` and ``other`` no longer reach each other; both still reach everyone else."""
        for src, dst in ((one, other), (other, one)):
            ip("-n", self.ns[src], "route", "add", "blackhole", "%s/32" % self.addr[dst])
            self.blackholes.add((src, self.addr[dst]))

    def heal(self):
        """Remove every partition's blackhole routes and bring every port up."""
        for src, dst in sorted(self.blackholes):
            ip("-n", self.ns[src], "route", "del", "blackhole", "%s/32" % dst, check=False)
        self.blackholes.clear()
        for name in self.ns:
            self.mend(name)


class NetnsCluster(Cluster):
    """A :class:`Cluster` whose processes run on :data:`PLACES`' hosts of ``hosts``.

    CURVE on every broker socket as always; the brokers bind their host's
    address (their three sockets, peer link and /metrics), the nodes theirs,
    and the nodes know both brokers by address.  Health checks and the
    caller's clients run in the ``clients`` host (see :meth:`Hosts.inside`).
    """

    def __init__(self, hosts, log_dir, env=None, curve=True):
        self.hosts = hosts
        everyone = ",".join(hosts.addr.values())
        super().__init__(log_dir, env={
            "CHAT_BROKER_HOST": self.address("broker"),
            "CHAT_BROKER2_HOST": self.address("broker2"),
            "DJANGO_ALLOWED_HOSTS": everyone,
            "CHAT_TRUSTED_PROXIES": self.address("balancer"),
            **(env or {})}, curve=curve)

    def address(self, name):
        return self.hosts.addr[PLACES[name]]

    def spawn(self, name, argv, env):
        return super().spawn(name, self.hosts.argv(PLACES[name], argv), env)

    def inside(self):
        """The calling thread in the clients' host (a context manager)."""
        return self.hosts.inside(PLACES["clients"])

    def start_node(self, name, port=None, env=None, wait=True):
        """As :meth:`Cluster.start_node`; the node admits the Origin of its own address and
        the balancer's (a websocket client sends its URL's)."""
        port = port or free_port()
        origins = ["http://%s:%d" % (self.address(n), p)
                   for n, p in (("balancer", self.balancer_port), (name, port))]
        return super().start_node(name, port, {"CHAT_ALLOWED_ORIGINS": ",".join(origins),
                                               **(env or {})}, wait)

    def health(self, url):
        with self.inside():
            return Cluster.health(url)
