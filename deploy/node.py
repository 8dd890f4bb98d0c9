"""scripts/node: add, drain or remove a node of the running cluster, upgrade it in turn, or wait until all are UP.

    scripts/node add node4 --port 8004   # a supervisor program, then a server in HAProxy
    scripts/node drain node2 --over 30   # no new sessions, its clients moved off in batches
    scripts/node undrain node2           # new sessions again
    scripts/node remove node4            # drained, out of HAProxy, stopped
    scripts/node upgrade                 # every node drained and restarted, then the broker pair
    scripts/node ready                   # every node UP in HAProxy (scripts/run waits on it)
    scripts/node targets                 # rewrite the discovery file from the balancer

After each of these the balancer's servers are written to the discovery file
(chatstream/discovery.py, ``var/targets/nodes.json``): Prometheus, /ops/ and
scripts/status find an added node there within seconds, and a removed one is gone.

``add`` first makes the node's own CURVE key and authorises it for the node's name
(``var/keys``, when the cluster has keys: broker/keys.py).  The program is node1's
section of supervisord.conf with the name and port changed,
written to ``var/nodes/NAME.conf`` (supervisord.conf includes ``var/nodes/*.conf``)
and started by ``supervisorctl reread`` + ``add``; HAProxy learns of it through its
runtime API (deploy/balancer.py), so neither supervisord nor the balancer restarts and
no other connection is touched.

A drain sets the server to ``drain`` in HAProxy (a long-polling session's own requests
still reach it, no new session does), leaves the node its plan in
``var/drain/NAME.json`` and sends it SIGUSR1 (web/chat/operations/drain.py says why
that channel); the node closes its sessions in batches and its clients reconnect
through the balancer to the other nodes.  Progress is the node's open sessions, read
from its /metrics.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from broker import keys
from chatstream import config, discovery
from deploy import balancer, pair

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PROGRAM = "node1"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
HEALTHY_TIMEOUT_S = 60   # a node's start: Django, the broker link and its snapshot
# A drain may take this much longer than its plan before it counts as stuck: its
# clients' disconnect handlers, and long-polls closed only at their next request (the
# node itself stops closing as long after: web/chat/operations/drain.py LATE_S).
DRAIN_GRACE_S = 30
DRAIN_POLL_S = 0.5      # between two looks at the node's open sessions
CONNECTIONS = re.compile(r"^chat_connections\{[^}]*\} ([0-9.e+]+)$", re.M)


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

    def __init__(self, config, socket, programs, targets, drain_dir, keys_dir=None):
        self.config, self.socket, self.programs = Path(config), Path(socket), Path(programs)
        self.targets, self.drain_dir = Path(targets), Path(drain_dir)
        self.keys_dir = Path(keys_dir) if keys_dir else None   # the programs' CHAT_KEYS_DIR

    def ctl(self, *args, check=True):
        done = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(self.config), *args],
                              capture_output=True, text=True, timeout=120)
        if check and (done.returncode != 0 or "ERROR" in done.stdout):
            raise SystemExit("supervisorctl %s: %s%s" % (" ".join(args), done.stdout, done.stderr))
        return done.stdout

    def add(self, name, port):
        if balancer.servers(self.socket).get(name):
            raise SystemExit("%s is already a server of the balancer" % name)
        self.add_key(name)
        path = self.programs / ("%s.conf" % name)
        self.programs.mkdir(parents=True, exist_ok=True)
        path.write_text(program_section(self.config.read_text(), name, port, self.config.parent))
        self.ctl("reread")
        self.ctl("add", name)
        wait_healthy("http://127.0.0.1:%d/healthz" % port)
        balancer.add_server(self.socket, name, "127.0.0.1:%d" % port)
        self.publish()
        print("%s is UP in the balancer (http://127.0.0.1:%d/)" % (name, port))

    def add_key(self, name):
        """The node's own CURVE key, authorised for its name: the broker reads its
        authorised keys again when the new key knocks (broker/keys.py), no signal needed."""
        if self.keys_dir is None or not (self.keys_dir / "broker.key").exists():
            return      # a cluster without keys (plain loopback sockets)
        for path in keys.add_node(self.keys_dir, name):
            print("%s: made %s" % (name, path))

    def node_url(self, name):
        address = balancer.addresses(self.socket).get(name)
        if address is None:
            raise SystemExit("%s is not a server of the balancer" % name)
        return "http://%s" % address

    def drain(self, name, over_s, batch=None):
        """No new session for ``name`` (balancer), then its sessions closed in batches
        over ``over_s``; returns once the node holds none (TimeoutError if it still
        does ``DRAIN_GRACE_S`` after the plan)."""
        url = self.node_url(name)
        balancer.set_state(self.socket, name, "drain")
        began = time.monotonic()
        left = open_sessions(url)
        print("%s: no new sessions (balancer: drain); moving %d off over %g s" % (name, left, over_s))
        self.drain_dir.mkdir(parents=True, exist_ok=True)
        plan = config.drain_plan(self.drain_dir, name)
        with open(plan + ".new", "w") as f:
            json.dump({"over_s": over_s, "batch": batch}, f)
        os.replace(plan + ".new", plan)   # the node never reads half a plan
        os.kill(self.pid(name), signal.SIGUSR1)
        deadline = began + over_s + DRAIN_GRACE_S
        while left:
            time.sleep(DRAIN_POLL_S)
            now = open_sessions(url)
            if now != left:
                print("%s: %d sessions open" % (name, now), flush=True)
            left = now
            if left and time.monotonic() > deadline:
                raise TimeoutError("%s still holds %d sessions %d s after its drain began"
                                   % (name, left, time.monotonic() - began))
        print("%s is empty: no session open (%.1f s)" % (name, time.monotonic() - began))

    def upgrade(self, over_s, batch=None):
        """A rolling restart onto the code now in the checkout: every node drained,
        restarted and back in the balancer in turn; then each broker pair's passive
        restarted (and caught up), its active stopped (the passive takes over) and
        started again, as the passive."""
        for name in sorted(balancer.addresses(self.socket)):
            url = self.node_url(name)
            self.drain(name, over_s, batch)
            self.ctl("restart", name)
            wait_healthy(url + "/healthz")
            self.undrain(name)
            print("%s restarted and UP in the balancer" % name, flush=True)
        brokers = pair.brokers(self.config, os.environ)
        roles = {name: pair.role(broker) for name, broker in brokers.items()}
        print("brokers: %s" % ", ".join("%s %s" % item for item in sorted(roles.items())))
        silent = sorted(name for name, role in roles.items() if role is None)
        if silent:   # which one is passive is unknown: restarting either could stop the service
            raise SystemExit("%s: no role on /metrics; the nodes are upgraded, the brokers "
                             "are not" % ", ".join(silent))
        for name in sorted(n for n, role in roles.items() if role == "passive"):
            with pair.caught_up(brokers[name]):
                self.ctl("restart", name)
            print("%s (passive) restarted and caught up with the active" % name, flush=True)
        for name in sorted(n for n, role in roles.items() if role != "passive"):
            self.ctl("stop", name)
            if roles[name] == "active":
                same_pair = {n: b for n, b in brokers.items() if n in pair.partners(name)}
                taking_over = pair.wait_role(same_pair, "active", but=name)
                print("%s stopped: %s took over" % (name, taking_over), flush=True)
            with pair.caught_up(brokers[name], alone=roles[name] != "active"):
                self.ctl("start", name)
            print("%s started again%s" % (name, " as the passive" if roles[name] == "active"
                                          else ""), flush=True)

    def undrain(self, name):
        """Back in the balancer's rotation after a drain (HAProxy state ``ready``)."""
        self.node_url(name)
        balancer.set_state(self.socket, name, "ready")
        balancer.wait_all_up(self.socket, [name])
        print("%s takes new sessions again" % name, flush=True)

    def pid(self, name):
        answer = self.ctl("pid", name).strip()
        if not answer.isdigit() or answer == "0":
            raise SystemExit("%s is not running (supervisorctl pid: %s)" % (name, answer))
        return int(answer)

    def remove(self, name, over_s=config.DRAIN_OVER_S, batch=None):
        path = self.programs / ("%s.conf" % name)
        if name in balancer.servers(self.socket):
            try:
                self.drain(name, over_s, batch)
            except (OSError, TimeoutError, SystemExit) as exc:   # down, or stuck: out all the same
                print("%s: not drained (%s); taken out as it is" % (name, exc))
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


def open_sessions(url):
    """The node's open sessions (Engine.IO, every transport), from its /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return int(sum(float(count) for count in CONNECTIONS.findall(text)))


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
    for command, text in (("drain", "move a node's clients to the others, until it is empty"),
                          ("remove", "drain a node, take it out of the balancer and stop it")):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("name")
        sub.add_argument("--over", type=float, default=config.DRAIN_OVER_S, metavar="SECONDS",
                         help="spread the disconnects over this long (default %(default)s)")
        sub.add_argument("--batch", type=int, metavar="N",
                         help="sessions per batch (default: one second's share)")
    commands.add_parser("undrain", help="a drained node takes new sessions again").add_argument("name")
    ready = commands.add_parser("ready", help="wait until every node is UP in the balancer")
    ready.add_argument("--timeout", type=float, default=balancer.READY_TIMEOUT_S)
    commands.add_parser("targets", help="write the balancer's nodes to the discovery file")
    upgrade = commands.add_parser("upgrade", help="drain and restart every node in turn, then "
                                                  "the broker pair: passive, failover, old active")
    upgrade.add_argument("--over", type=float, default=config.DRAIN_OVER_S, metavar="SECONDS",
                         help="each node's drain (default %(default)s)")
    upgrade.add_argument("--batch", type=int, metavar="N", help="sessions per batch")
    args = parser.parse_args(argv)
    # var/ beside supervisord.conf, as its %(here)s/var: a relocated cluster keeps its own
    here = Path(args.config).parent
    targets = here / (args.targets or config.OPS_TARGETS_FILE)
    drain_dir = here / os.environ.get("CHAT_DRAIN_DIR", config.DRAIN_DIR)
    cluster = Cluster(args.config, args.socket, args.programs, targets, drain_dir,
                      keys_dir=here / config.KEYS_DIR)   # supervisord.conf's %(here)s/var/keys
    if getattr(args, "batch", None) is not None and args.batch < 1:
        parser.error("--batch is at least 1")
    if not 0 <= getattr(args, "over", 0) <= 3600:
        parser.error("--over is 0-3600 seconds")
    try:
        if args.command == "ready":
            cluster.ready(args.timeout)
            return 0
        if args.command == "targets":
            nodes = cluster.publish()
            print("%s: %s" % (targets, ", ".join("%s=%s" % kv for kv in sorted(nodes.items()))))
            return 0
        if args.command == "upgrade":
            cluster.upgrade(args.over, args.batch)
            return 0
        if not NAME.match(args.name):
            parser.error("a node name is 1-32 of A-Z a-z 0-9 _ -")
        if args.command == "add":
            cluster.add(args.name, args.port)
        elif args.command == "drain":
            cluster.drain(args.name, args.over, args.batch)
        elif args.command == "undrain":
            cluster.undrain(args.name)
        else:
            cluster.remove(args.name, args.over, args.batch)
    except (balancer.BalancerError, TimeoutError, OSError) as exc:
        print("scripts/node: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
