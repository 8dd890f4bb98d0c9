"""Operations settings: metrics, the /ops/ dashboard's targets, log format.

Re-exported by :mod:`chatstream.config` (one place for every default); split
out so that module stays small.  Every ``CHAT_*`` variable is in README.md.
"""
import os

# The broker's Prometheus endpoint, http://<CHAT_BROKER_HOST>:5558/metrics: the
# port after its three ZeroMQ sockets; 0 serves no metrics.
BROKER_METRICS_PORT = 5558

# What /ops/ and scripts/status scrape, "name=url" by comma: the default cluster
# of scripts/run (supervisord.conf).  A name starting with "broker" is a broker.
OPS_TARGETS = ("node1=http://127.0.0.1:8001,node2=http://127.0.0.1:8002,"
               "node3=http://127.0.0.1:8003,broker=http://127.0.0.1:5558,"
               "broker2=http://127.0.0.1:5568")
# The nodes the balancer serves, written by scripts/node (chatstream/discovery.py) and
# read by Prometheus, /ops/ and scripts/status beside OPS_TARGETS.  Relative to the
# repository (Prometheus finds it from deploy/prometheus.yml: ../var/targets/).
OPS_TARGETS_FILE = "var/targets/nodes.json"
# One scrape may take this long before its target counts as down: well under the
# dashboard's 1 s period, and far above a loopback scrape (about 2 ms).
OPS_SCRAPE_TIMEOUT_S = 0.5
# Scrapes are cached this long: many open dashboards cost one scrape per second.
OPS_CACHE_S = 1.0

# "plain" (human) or "json" (one JSON object per line, for log collectors).
LOG_FORMAT = "plain"


def ops_targets(text):
    """``[(name, url), ...]`` from "name=url,name=url" (CHAT_OPS_TARGETS)."""
    targets = []
    for item in text.split(","):
        name, sep, url = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError("CHAT_OPS_TARGETS item %r is not name=http(s)://host:port" % item)
        targets.append((name, url.rstrip("/")))
    return targets


def ops_targets_file(environ, root):
    """The discovery file to read beside CHAT_OPS_TARGETS: CHAT_OPS_TARGETS_FILE
    (relative to ``root``), else the default one unless CHAT_OPS_TARGETS is set (a
    hand-set list describes a cluster of its own); None: none."""
    path = environ.get("CHAT_OPS_TARGETS_FILE") or (
        None if environ.get("CHAT_OPS_TARGETS") else OPS_TARGETS_FILE)
    if not path:
        return None
    return os.path.join(root, path)
