"""scripts/run's broker pairs beyond the first: ``python -m deploy.pairs write N``.

Pair one (``broker``, ``broker2``) is in supervisord.conf.  Pairs 2..N are written as
``var/pairs/pairK.conf`` (supervisord.conf includes ``var/pairs/*.conf``), each made from
broker2's section with the program names (pair 2: ``broker3`` primary, ``broker4``
backup), ports (chatstream.config.PAIR_PORT_STRIDE above pair one's), store and log of
its own; the same CURVE keys folder, so every pair admits the same node keys and the
nodes trust one broker key.  Files of pairs above N are removed: the cluster started
next runs N pairs.  Prometheus finds their brokers in ``var/targets/brokers.json``.
"""
import argparse
import json
import re
from pathlib import Path

from chatstream import config

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PROGRAM = "broker2"
PAIR_CONF = re.compile(r"^pair(\d+)\.conf$")


def environment(k, backup, here):
    """The CHAT_* environment of pair ``k``'s primary (``backup`` False) or backup."""
    name = config.pair_brokers(k)[backup]

    def port(base, broker_backup=backup):
        return base + (k - 1) * config.PAIR_PORT_STRIDE + broker_backup * config.BROKER2_PORT_OFFSET

    def tcp(base, broker_backup=backup):
        return config.tcp_endpoint(config.BROKER_HOST, port(base, broker_backup))
    items = [("PYTHONUNBUFFERED", "1"), ("CHAT_KEYS_DIR", "%s/var/keys" % here),
             ("CHAT_BROKER_ROLE", config.PAIR_ROLES[backup]),
             ("CHAT_BROKER_STATE", "%s/var/%s.sqlite3" % (here, name)),
             ("CHAT_BROKER_INTAKE_BIND", tcp(config.INTAKE_PORT)),
             ("CHAT_BROKER_PUBLISH_BIND", tcp(config.PUBLISH_PORT)),
             ("CHAT_BROKER_SNAPSHOT_BIND", tcp(config.SNAPSHOT_PORT)),
             ("CHAT_BROKER_METRICS_PORT", str(port(config.BROKER_METRICS_PORT))),
             ("CHAT_BROKER_PEER_BIND", tcp(config.PEER_PORT)),
             ("CHAT_BROKER_PEER", tcp(config.PEER_PORT, not backup))]
    return name, ",".join('%s="%s"' % item for item in items)


def pair_sections(config_text, k, here):
    """Pair ``k``'s two ``[program:...]`` sections, from broker2's in ``config_text``."""
    match = re.search(r"^\[program:%s\]\n.*?(?=^\[|\Z)" % TEMPLATE_PROGRAM, config_text, re.M | re.S)
    if match is None:
        raise SystemExit("no [program:%s] in supervisord.conf to copy" % TEMPLATE_PROGRAM)
    template = match.group(0).replace("%(here)s", str(here))
    sections = []
    for backup in (False, True):
        name, env = environment(k, backup, here)
        section = re.sub(r"^\[program:%s\]" % TEMPLATE_PROGRAM, "[program:%s]" % name, template,
                         flags=re.M)
        section = re.sub(r"/var/log/%s\.log" % TEMPLATE_PROGRAM, "/var/log/%s.log" % name, section)
        section = re.sub(r"^environment=.*$", "environment=" + env, section,
                         flags=re.M)
        section = re.sub(r"^(command=[^;\n]*?)\s*;.*$", r"\1", section, flags=re.M)
        sections.append(section.rstrip("\n") + "\n")
    return "\n".join(sections)


def write(count, conf_path=ROOT / "supervisord.conf", out_dir=None, targets=None):
    """Write ``pairK.conf`` for K = 2..count and remove the others, and Prometheus's list
    of their brokers (``targets``, default ``var/targets/brokers.json``: deploy/prometheus.yml);
    returns the programs' paths written."""
    conf_path = Path(conf_path)
    here = conf_path.resolve().parent
    out_dir = Path(out_dir) if out_dir else here / "var" / "pairs"
    targets = Path(targets) if targets else here / "var" / "targets" / "brokers.json"
    targets.parent.mkdir(parents=True, exist_ok=True)
    targets.write_text(json.dumps([{"targets": [
        "%s:%d" % (config.BROKER_HOST, config.BROKER_METRICS_PORT + (k - 1) * config.PAIR_PORT_STRIDE
                   + backup * config.BROKER2_PORT_OFFSET)
        for k in range(2, count + 1) for backup in (0, 1)]}] if count > 1 else []) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    text = conf_path.read_text()
    written = []
    for k in range(2, count + 1):
        path = out_dir / ("pair%d.conf" % k)
        path.write_text("; broker pair %d, made by scripts/run from CHAT_BROKER_PAIRS (deploy/pairs.py)\n\n"
                        % k + pair_sections(text, k, here))
        written.append(path)
    for path in out_dir.iterdir():
        found = PAIR_CONF.match(path.name)
        if found and int(found.group(1)) > count:
            path.unlink()
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="the supervisor programs of pairs 2..N")
    w.add_argument("count", type=int)
    w.add_argument("--conf", default=str(ROOT / "supervisord.conf"))
    args = parser.parse_args(argv)
    if args.count < 1:
        raise SystemExit("CHAT_BROKER_PAIRS must be at least 1")
    for path in write(args.count, args.conf):
        print("wrote %s" % path)


if __name__ == "__main__":
    main()
