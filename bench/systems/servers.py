"""The systems under test, each started on free loopback ports and stopped by pid.

- ``ours``: the product's broker + N nodes (harness.cluster.Cluster), CURVE
  on every broker socket as deployed;
- ``ours-plain``: the same without CURVE, to measure what CURVE costs;
- ``redis``: redis-server + N nodes of bench/systems/redis_baseline.py
  (python-socketio + RedisManager, gevent);
- ``node``: the same redis-server + N Node processes of bench/systems/node_baseline/server.js
  (socket.io 4.8 + @socket.io/redis-adapter).

Both expose the same interface: ``start(nodes)`` -> node URLs, ``procs``
({name: process} of every server process, for /proc sampling), ``stop()``,
``logs()``.  Everything listens on 127.0.0.1 only.
"""
import shutil
from pathlib import Path

from harness.cluster import Cluster
from harness.processes import PYTHON, Proc, base_env, free_port, wait_until

NODE_BASELINE = Path(__file__).resolve().parent / "node_baseline"
# Per-connection rate limit of our nodes, raised out of the benchmark's way
# (a burst client sends ~17 msg/s; the ramp goes higher).
RATE_LIMIT_OUT_OF_THE_WAY = 100000
START_TIMEOUT_SECS = 30


class OursSystem:
    """The product: broker + nodes.

    :param log_dir: where each process logs.
    :param env: extra environment for every process.
    """
    name = "ours"
    label = "ours (ZeroMQ broker)"
    hub = "broker"   # the process besides the nodes whose CPU counts as server CPU
    curve = True     # CURVE keys for broker and nodes, as scripts/run runs them

    def __init__(self, log_dir, env=None):
        self.log_dir = Path(log_dir)
        limit = str(RATE_LIMIT_OUT_OF_THE_WAY)
        self.cluster = Cluster(self.log_dir, env={"CHAT_RATE_PER_S": limit, "CHAT_RATE_BURST": limit,
                                                  **(env or {})}, curve=self.curve)
        self.names = []

    def start(self, nodes=3):
        self.cluster.start_broker()
        self.names = ["node%d" % i for i in range(1, nodes + 1)]
        self.cluster.start_nodes(self.names, timeout=START_TIMEOUT_SECS)
        return [self.cluster.url(name) for name in self.names]

    @property
    def procs(self):
        procs = {"broker": self.cluster.broker} if self.cluster.broker else {}
        procs.update({name: self.cluster.nodes[name][0] for name in self.names if name in self.cluster.nodes})
        return procs

    def describe(self):
        return ", ".join("%s pid %d" % (name, proc.pid) for name, proc in self.procs.items())

    def stop(self):
        self.cluster.stop()

    def logs(self):
        return self.cluster.logs()


class OursPlainSystem(OursSystem):
    """The product with plain sockets (loopback, no keys): ``ours`` minus CURVE."""
    name = "ours-plain"
    label = "ours without CURVE"
    curve = False


def redis_server_binary():
    return shutil.which("redis-server")


class RedisSystem:
    """The baseline: one redis-server and nodes of bench/baseline_redis/app.py.

    :param log_dir: where each process logs (redis-server keeps no files).
    """
    name = "redis"
    label = "python-socketio + RedisManager"
    hub = "redis"

    def __init__(self, log_dir, env=None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = base_env(env)   # the harness's clean environment
        self.redis_port = free_port()
        self.redis = None
        self.nodes = {}   # name -> (Proc, port)
        self.all = []

    def start(self, nodes=3):
        binary = redis_server_binary()
        if not binary:
            raise RuntimeError("redis-server is missing (scripts/bench installs it when run as root; "
                               "otherwise: sudo apt-get install redis-server)")
        self.redis = Proc("redis", [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                                    "--dir", str(self.log_dir), "--loglevel", "warning",
                                    "--maxclients", "10000"], self.env, self.log_dir).start()
        self.all.append(self.redis)
        wait_until(lambda: _redis_ping(self.redis_port) or self._check_alive(self.redis),
                   START_TIMEOUT_SECS, "redis-server on port %d" % self.redis_port)
        url = "redis://127.0.0.1:%d/0" % self.redis_port
        for i in range(1, nodes + 1):
            name, port = "node%d" % i, free_port()
            proc = Proc(name, self.node_argv(name, port, url), self.env, self.log_dir).start()
            self.all.append(proc)
            self.nodes[name] = (proc, port)
        for name, (proc, port) in self.nodes.items():
            wait_until(lambda: Cluster.health("http://127.0.0.1:%d" % port) == 200 or self._check_alive(proc),
                       START_TIMEOUT_SECS, "%s /healthz 200" % name)
        return ["http://127.0.0.1:%d" % port for _, port in self.nodes.values()]

    @staticmethod
    def node_argv(name, port, redis_url):
        return [PYTHON, "-m", "bench.systems.redis_baseline", "--name", name, "--port", str(port), "--redis", redis_url]

    @staticmethod
    def _check_alive(proc):
        if not proc.alive():
            raise RuntimeError("%s exited:\n%s" % (proc.name, proc.log()[-3000:]))
        return False

    @property
    def procs(self):
        procs = {"redis": self.redis} if self.redis else {}
        procs.update({name: proc for name, (proc, _) in self.nodes.items()})
        return procs

    def describe(self):
        return ", ".join("%s pid %d" % (name, proc.pid) for name, proc in self.procs.items())

    def stop(self):
        for proc in reversed(self.all):
            proc.stop()

    def logs(self):
        return {p.name: p.log() for p in self.all}


def _redis_ping(port):
    import redis
    try:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping()
    except redis.RedisError:
        return False


class NodeSystem(RedisSystem):
    """Node socket.io + @socket.io/redis-adapter: the same redis-server, Node processes as nodes
    (bench/systems/node_baseline, ``npm ci`` by scripts/setup --dev)."""
    name = "node"
    label = "Node socket.io + redis adapter"

    @staticmethod
    def node_argv(name, port, redis_url):
        if not (NODE_BASELINE / "node_modules" / "socket.io").is_dir():
            raise RuntimeError("bench/systems/node_baseline/node_modules is missing: run scripts/setup --dev")
        return [shutil.which("node") or "node", str(NODE_BASELINE / "server.js"), "--name", name,
                "--port", str(port), "--redis", redis_url]


SYSTEMS = {"ours": OursSystem, "ours-plain": OursPlainSystem, "redis": RedisSystem, "node": NodeSystem}
