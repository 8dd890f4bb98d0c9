"""scripts/node: add a node to the running cluster, take one out, or wait until all are UP.

    scripts/node add node4 --port 8004   # a supervisor program, then a server in HAProxy
    scripts/node remove node4            # out of HAProxy, its clients reconnect elsewhere
    scripts/node ready                   # every node UP in HAProxy (scripts/run waits on it)
    scripts/node targets                 # rewrite the discovery file from the balancer

After each of these the balancer's servers are written to the discovery file
(chatstream/discovery.py, ``var/targets/nodes.json``): Prometheus, /ops/ and
scripts/status find an added node there within seconds, and a removed one is gone.

The program is node1's section of supervisord.conf with the name and port changed,
written to ``var/nodes/NAME.conf`` (supervisord.conf includes ``var/nodes/*.conf``)
and started by ``supervisorctl reread`` + ``add``; HAProxy learns of it through its
runtime API (deploy/balancer.py), so neither supervisord nor the balancer restarts and
no other connection is touched.
"""
import argparse
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from chatstream import config, discovery
from deploy import balancer

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PROGRAM = "node1"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HEALTHY_TIMEOUT_S = 60   # a node's start: Django, the broker link and its snapshot


def program_section(config_text, name, port, here):
    """node1's ``[program:...]`` section of supervisord.conf, as program ``name`` on ``port``."""
    match = re.search(r"^\[program:%s\]\n.*?(?=^\[|\Z)" % TEMPLATE_PROGRAM, config_text, re.M | re.S)
    if match is None:
        raise SystemExit("no [program:%s] in supervisord.conf to copy" % TEMPLATE_PROGRAM)
    section = re.sub(r"\b%s\b" % TEMPLATE_PROGRAM, name, match.group(0))
    section = re.sub(r"--port \d+", "--port %d" % port, section)
    # %(here)s of an included file would be var/nodes, not the cluster's folder
    return "; made by scripts/node add; scripts/node remove deletes it\n" + section.replace(
        "%(here)s", str(here))


class Cluster:
    """The running cluster: supervisord (``config``), the balancer's runtime API
    (``socket``) and the discovery file of its nodes (``targets``)."""

    def __init__(self, config, socket, programs, targets):
        self.config, self.socket, self.programs = Path(config), Path(socket), Path(programs)
        self.targets = Path(targets)

    def ctl(self, *args, check=True):
        done = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(self.config), *args],
                              capture_output=True, text=True, timeout=120)
        if check and (done.returncode != 0 or "ERROR" in done.stdout):
            raise SystemExit("supervisorctl %s: %s%s" % (" ".join(args), done.stdout, done.stderr))
        return done.stdout

    def add(self, name, port):
        if balancer.servers(self.socket).get(name):
            raise SystemExit("%s is already a server of the balancer" % name)
        path = self.programs / ("%s.conf" % name)
        self.programs.mkdir(parents=True, exist_ok=True)
        path.write_text(program_section(self.config.read_text(), name, port, self.config.parent))
        self.ctl("reread")
        self.ctl("add", name)
        wait_healthy("http://127.0.0.1:%d/healthz" % port)
        balancer.add_server(self.socket, name, "127.0.0.1:%d" % port)
        self.publish()
        print("%s is UP in the balancer (http://127.0.0.1:%d/)" % (name, port))

    def remove(self, name):
        path = self.programs / ("%s.conf" % name)
        if name in balancer.servers(self.socket):
            balancer.remove_server(self.socket, name, stop=lambda: self.ctl("stop", name, check=False))
            self.publish()
        self.ctl("stop", name, check=False)
        self.ctl("remove", name, check=False)
        path.unlink(missing_ok=True)
        self.ctl("reread")
        print("%s is out of the balancer and stopped" % name)

    def ready(self, timeout):
        up = balancer.wait_all_up(self.socket, timeout=timeout)   # the balancer is up too
        if self.restore():
            up = balancer.wait_all_up(self.socket, timeout=timeout)
        self.publish()
        print("every node is UP in the balancer: %s" % ", ".join(sorted(up)))

    def publish(self):
        """The balancer's servers, whatever their state, into the discovery file: a
        node that is down stays listed (and shows as down) until it is removed."""
        nodes = balancer.addresses(self.socket)
        discovery.write(self.targets, nodes)
        return nodes

    def restore(self):
        """Nodes added earlier (``var/nodes/*.conf``, which supervisord starts with the
        cluster) back into a balancer that restarted with only its static servers."""
        known, restored = balancer.servers(self.socket), []
        for path in sorted(self.programs.glob("*.conf")):
            port = re.search(r"--port (\d+)", path.read_text())
            if path.stem in known or port is None:
                continue
            wait_healthy("http://127.0.0.1:%s/healthz" % port.group(1))
            balancer.add_server(self.socket, path.stem, "127.0.0.1:%s" % port.group(1))
            print("%s (added earlier, var/nodes/) is back in the balancer" % path.stem)
            restored.append(path.stem)
        return restored


def wait_healthy(url, timeout=HEALTHY_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit("%s did not answer 200 within %d s" % (url, timeout))
        time.sleep(0.2)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/node", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "supervisord.conf"), help="supervisord.conf")
    parser.add_argument("--socket", default=str(ROOT / "var/haproxy.sock"),
                        help="the balancer's runtime API (BALANCER_STATS_SOCKET)")
    parser.add_argument("--programs", default=str(ROOT / "var/nodes"),
                        help="the folder supervisord.conf includes")
    parser.add_argument("--targets", default=os.environ.get("CHAT_OPS_TARGETS_FILE"),
                        help="the discovery file of the balancer's nodes (default "
                             "CHAT_OPS_TARGETS_FILE, else var/targets/nodes.json beside --config)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="start a node and add it to the balancer")
    add.add_argument("name")
    add.add_argument("--port", type=int, required=True)
    commands.add_parser("remove", help="take a node out of the balancer and stop it").add_argument("name")
    ready = commands.add_parser("ready", help="wait until every node is UP in the balancer")
    ready.add_argument("--timeout", type=float, default=balancer.READY_TIMEOUT_S)
    commands.add_parser("targets", help="write the balancer's nodes to the discovery file")
    args = parser.parse_args(argv)
    # var/ beside supervisord.conf, as its %(here)s/var: a relocated cluster keeps its own
    targets = Path(args.config).parent / (args.targets or config.OPS_TARGETS_FILE)
    cluster = Cluster(args.config, args.socket, args.programs, targets)
    try:
        if args.command == "ready":
            cluster.ready(args.timeout)
            return 0
        if args.command == "targets":
            nodes = cluster.publish()
            print("%s: %s" % (targets, ", ".join("%s=%s" % kv for kv in sorted(nodes.items()))))
            return 0
        if not NAME.match(args.name):
            parser.error("a node name is 1-32 of A-Z a-z 0-9 _ -")
        if args.command == "add":
            cluster.add(args.name, args.port)
        else:
            cluster.remove(args.name)
    except (balancer.BalancerError, TimeoutError, OSError) as exc:
        print("scripts/node: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
