"""The broker pair as ``scripts/node upgrade`` sees it: supervisord.conf's broker
programs, each one's role (its /metrics ``chat_broker_role``) and its log.

A restarted broker of a pair serves again only once it holds everything the active
had (broker/replication.py); its log says so ("caught up with the active"), and that
line, written after the restart, is what :func:`caught_up` waits for.
"""
import contextlib
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from chatstream import config

from . import stores

ROLE = re.compile(r'^chat_broker_role\{role="(\w+)"\} 1', re.M)
CAUGHT_UP = b"caught up with the active"
ROLE_TIMEOUT_S = 30    # a failover: the nodes find the active gone (3 s), the passive takes over
CATCH_UP_TIMEOUT_S = 60  # a restarted broker: its start, then its catch-up snapshot
POLL_S = 0.2


@dataclass(frozen=True)
class Broker:
    """A broker program: where its metrics answer and where it logs."""
    name: str
    metrics_url: str
    log: Path


def brokers(conf_path, environ):
    """``{program: Broker}`` of supervisord.conf's programs that run ``-m broker``; a
    program's own environment first, then ``environ`` (supervisord passes it on)."""
    found = {}
    for name, program, own in stores.broker_programs(conf_path):
        def setting(key, default):
            return own.get(key) or environ.get(key) or default
        url = "http://%s:%s" % (setting("CHAT_BROKER_HOST", config.BROKER_HOST),
                                setting("CHAT_BROKER_METRICS_PORT", config.BROKER_METRICS_PORT))
        log = program.get("stdout_logfile") or str(Path(conf_path).resolve().parent
                                                    / "var/log/%s.log" % name)
        found[name] = Broker(name, url, Path(log))
    return found


def partners(name):
    """The programs of ``name``'s failover pair (scripts/run's names: ``broker`` and
    ``broker2``, ``broker3`` and ``broker4`` ...); a name outside them is a pair alone."""
    k = config.broker_pair(name)
    return (name,) if k is None else config.pair_brokers(k)


def role(broker):
    """``active``, ``passive``, ``primary``, ``backup`` (broker/bstar.py), or None
    when its metrics do not answer."""
    try:
        with urllib.request.urlopen(broker.metrics_url + "/metrics", timeout=5) as answer:
            found = ROLE.search(answer.read().decode())
    except (OSError, urllib.error.URLError):
        return None
    return found.group(1) if found else None


def wait_role(brokers, wanted, but=None, timeout=ROLE_TIMEOUT_S):
    """The name of a broker (other than ``but``) in role ``wanted``, once one is."""
    deadline = time.monotonic() + timeout
    while True:
        for name, broker in sorted(brokers.items()):
            if name != but and role(broker) == wanted:
                return name
        if time.monotonic() > deadline:
            raise TimeoutError("no broker %s after %d s" % (wanted, timeout))
        time.sleep(POLL_S)


@contextlib.contextmanager
def caught_up(broker, alone=False, timeout=CATCH_UP_TIMEOUT_S):
    """Around a (re)start of ``broker``: on leaving, wait until its log says it caught up
    with the active (written after the start); ``alone`` (no pair): until it serves."""
    offset = broker.log.stat().st_size if broker.log.exists() else 0
    yield
    deadline = time.monotonic() + timeout
    while True:
        if alone:
            if role(broker) in ("primary", "active"):
                return
        elif broker.log.exists():
            with open(broker.log, "rb") as f:
                f.seek(offset if broker.log.stat().st_size >= offset else 0)   # rotated: anew
                if CAUGHT_UP in f.read():
                    return
        if time.monotonic() > deadline:
            raise TimeoutError("%s: not caught up %d s after its start (%s)"
                               % (broker.name, timeout, broker.log))
        time.sleep(POLL_S)
