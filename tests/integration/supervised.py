"""supervisord.conf's own cluster, as scripts/run starts it, moved to free ports and a folder
of the test's so it runs beside a live cluster; its programs' logs are scanned at the end."""
import re
import subprocess

from harness.processes import ROOT, Proc, base_env, check_logs, free_port

SUPERVISORD = str(ROOT / ".venv/bin/supervisord")
SUPERVISORCTL = str(ROOT / ".venv/bin/supervisorctl")
# The balancer (http, https) and node1..node3; then the failover pair's other ports and
# the archiver's metrics.
EDGE_PORTS = (8000, 8001, 8002, 8003, 8443)
PAIR_PORTS = (5559, 5565, 5566, 5567, 5568, 5569, 5560)
NODES = ("node1", "node2", "node3")


def programs():
    """The supervisor programs supervisord.conf runs."""
    return set(re.findall(r"^\[program:(\S+)\]", (ROOT / "supervisord.conf").read_text(), re.M))


def relocated_config(tmp_path, ports):
    """supervisord.conf with its ports and var/ moved, so it can run beside a live cluster."""
    text = (ROOT / "supervisord.conf").read_text()
    text = text.replace("%(here)s/var", str(tmp_path / "var")).replace("%(here)s", str(ROOT))
    for default, port in ports.items():
        text = re.sub(r"(?<=[ :\"])%d\b" % default, str(port), text)
    path = tmp_path / "supervisord.conf"
    path.write_text(text)
    (tmp_path / "var" / "log").mkdir(parents=True, exist_ok=True)
    return path


class SupervisedCluster:
    """The relocated cluster: ``start()``, then ``ctl(...)`` (supervisorctl) and
    ``node(...)`` (scripts/node) against it; ``stop()`` fails on errors in its logs.

    :param env: more environment for supervisord and the commands (wins over the defaults).
    :param allow: log patterns a test provokes on purpose (see harness.processes.check_logs).
    """

    def __init__(self, tmp_path, env=None, allow=()):
        self.tmp, self.var = tmp_path, tmp_path / "var"
        self.ports = {p: free_port() for p in EDGE_PORTS + PAIR_PORTS}
        self.conf = relocated_config(tmp_path, self.ports)
        self.allow = tuple(allow)
        # What scripts/run makes in var/ before it starts supervisord: the balancer's certificate.
        subprocess.run([str(ROOT / "scripts/tls-cert"), str(self.var / "tls/chat.pem")],
                       check=True, capture_output=True, timeout=60)
        self.env = base_env({"CHAT_BROKER_%s_PORT" % k: str(free_port())
                             for k in ("INTAKE", "PUBLISH", "SNAPSHOT", "METRICS")})
        # broker2's store moves with var/; the broker's store and the database default to
        # the repository's var/.
        self.env.update(CHAT_BROKER_STATE=str(self.var / "broker.sqlite3"),
                        CHAT_DATABASE_PATH=str(self.var / "web.sqlite3"),
                        CHAT_OPS_TARGETS_FILE=str(self.var / "targets/nodes.json"),
                        CHAT_BALANCER_PORT=str(self.ports[8000]),
                        CHAT_BALANCER_TLS_PORT=str(self.ports[8443]))
        self.env.update(env or {})
        self.supervisord = None

    @property
    def url(self):
        """The balancer's URL."""
        return "http://127.0.0.1:%d" % self.ports[8000]

    def node_url(self, name):
        return "http://127.0.0.1:%d" % self.ports[8001 + NODES.index(name)]

    def manage(self, *args, env=None):
        """``web/manage.py ARGS`` on this cluster's database; its exit code checked."""
        done = subprocess.run([str(ROOT / ".venv/bin/python"), "web/manage.py", *args], cwd=ROOT,
                              env=dict(self.env, **(env or {})), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def start(self):
        """Migrate the cluster's database (as scripts/setup does), then start supervisord."""
        self.manage("migrate", "--noinput")
        self.supervisord = Proc("supervisord", [SUPERVISORD, "-n", "-c", str(self.conf)],
                                self.env, self.tmp).start()
        return self

    def ctl(self, *args):
        return subprocess.run([SUPERVISORCTL, "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=60, env=self.env)

    def status(self):
        """{program: state} as supervisorctl reports it."""
        return dict(re.findall(r"^(\S+)\s+(\S+)", self.ctl("status").stdout, re.M))

    def node_command(self, *args):
        """The argv of ``scripts/node ARGS`` against this cluster."""
        return [str(ROOT / "scripts/node"), "--config", str(self.conf), "--socket",
                str(self.var / "haproxy.sock"), "--programs", str(self.var / "nodes"), *args]

    def node(self, *args, timeout=120):
        """``scripts/node ARGS``, which must succeed; its output."""
        done = subprocess.run(self.node_command(*args), env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self, timeout=60):
        """Stop supervisord and its programs; then fail on a traceback or ERROR line in any
        program's log (supervisord's own included)."""
        if self.supervisord is not None:
            self.supervisord.stop(timeout=timeout)
        logs = [_LogFile(path) for path in sorted((self.var / "log").glob("*.log"))]
        check_logs([self.supervisord, *logs] if self.supervisord else logs, self.allow)


class _LogFile:
    """A program's log under supervisord, read as check_logs reads a Proc's."""

    def __init__(self, path):
        self.name, self.log_path = path.stem, path

    def log(self):
        return self.log_path.read_text(errors="replace")
