"""The nodes the balancer serves, in one file: Prometheus's file-based service discovery.

``scripts/node`` writes it from the balancer's servers whenever it adds or removes one
(and on ``ready``, which ``scripts/run`` waits on); Prometheus watches it
(deploy/prometheus.yml ``file_sd_configs``), the /ops/ dashboard and ``scripts/status``
read it at every scrape.  One target group per node, labelled with its name::

    [{"targets": ["127.0.0.1:8004"], "labels": {"node": "node4"}}, ...]

It is written whole and renamed over the old one, so a reader never sees half a file.
Stdlib only: the node side and the tools both import it.
"""
import json
import os
from pathlib import Path

NAME_LABEL = "node"


def write(path, nodes):
    """Make ``path`` list exactly ``nodes`` ({name: "host:port"})."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": [address], "labels": {NAME_LABEL: name}}
              for name, address in sorted(nodes.items())]
    partial = path.with_name(".%s.%d.partial" % (path.name, os.getpid()))
    with open(partial, "w") as f:
        json.dump(groups, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def read(path):
    """``[(name, url)]`` of the nodes in ``path``; none when it does not exist (yet)."""
    try:
        groups = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    return [(group["labels"][NAME_LABEL], "http://%s" % address)
            for group in groups for address in group["targets"]]


def merged(static, path):
    """``static`` targets ([(name, url)]) and the discovered nodes; a name in both
    takes the file's url (the balancer's word is the newer)."""
    found = dict(read(path)) if path else {}
    targets = [(name, found.pop(name, url)) for name, url in static]
    return targets + sorted(found.items())
