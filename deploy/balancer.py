"""HAProxy's runtime API (its stats socket): servers added, drained and deleted while it runs.

deploy/haproxy.cfg opens the socket at ``BALANCER_STATS_SOCKET`` (supervisord.conf:
``var/haproxy.sock``) with ``level admin``.  One command per connection: the API
answers and closes.  HAProxy 2.6 creates a dynamic server in maintenance with its
health check off, and ignores ``default-server`` for it, so :func:`add_server`
spells out the check settings and enables both; a server is deleted only once it
is in maintenance and has no connection left (:func:`remove_server`).
"""
import csv
import io
import socket
import time

BACKEND = "nodes"
# What deploy/haproxy.cfg's default-server gives node1..node3 (HAProxy ignores it for
# dynamic servers): a health check every second, down after 2 failures, up after 2.
SERVER_OPTIONS = "check inter 1s fall 2 rise 2"
POLL_S = 0.2          # between two looks at the servers' state: a check is every 1 s
READY_TIMEOUT_S = 60  # the nodes' start (Django, broker snapshot) plus rise 2 x inter 1s


class BalancerError(RuntimeError):
    """The runtime API refused a command; the message is HAProxy's answer."""


def command(sock_path, line, timeout=5.0):
    """Send one runtime API command and return HAProxy's answer (text)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(sock_path))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(chunk)


def _expect(sock_path, line, *ok):
    answer = command(sock_path, line)
    if not any(word in answer for word in ok):
        raise BalancerError("%s: %s" % (line, answer.strip() or "no answer"))
    return answer


def servers(sock_path, backend=BACKEND):
    """``{server: row}`` of ``show stat`` for the backend's servers (``status``, ``scur`` ...)."""
    text = command(sock_path, "show stat")
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {row["svname"]: row for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}


def addresses(sock_path, backend=BACKEND):
    """``{server: "host:port"}`` of the backend's servers, whatever their state."""
    return {name: row["addr"] for name, row in servers(sock_path, backend).items()}


def statuses(sock_path, backend=BACKEND):
    """``{server: status}``: "UP", "DOWN", "MAINT", "UP 1/2" (going down), "DOWN 1/2" ..."""
    return {name: row["status"] for name, row in servers(sock_path, backend).items()}


def wait_until(sock_path, done, what, timeout=READY_TIMEOUT_S):
    """Poll the servers' statuses until ``done(statuses)``; raise TimeoutError naming them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = statuses(sock_path)
        except OSError as exc:       # the balancer is starting: no socket yet
            seen = {"balancer": str(exc)}
        else:
            if done(seen):
                return seen
        if time.monotonic() > deadline:
            raise TimeoutError("balancer: %s not reached after %d s: %s" % (what, timeout, seen))
        time.sleep(POLL_S)


def wait_all_up(sock_path, names=None, timeout=READY_TIMEOUT_S):
    """Return once every server of the backend (or every one of ``names``) is UP."""
    def done(seen):
        wanted = names if names is not None else seen
        return bool(wanted) and all(seen.get(name) == "UP" for name in wanted)
    return wait_until(sock_path, done, "%s UP" % (", ".join(names) if names else "every node"),
                      timeout)


def add_server(sock_path, name, address, backend=BACKEND, timeout=READY_TIMEOUT_S):
    """Add ``name`` at ``host:port``, health-checked, and return once it is UP."""
    server = "%s/%s" % (backend, name)
    _expect(sock_path, "add server %s %s %s" % (server, address, SERVER_OPTIONS), "New server registered")
    command(sock_path, "enable health %s" % server)
    command(sock_path, "enable server %s" % server)
    return wait_all_up(sock_path, [name], timeout)


def set_state(sock_path, name, state, backend=BACKEND):
    """``state`` "drain" (only its sessions' own requests, by stickiness, reach it: no
    new session), "ready" (back in the rotation) or "maint" for server ``name``."""
    line = "set server %s/%s state %s" % (backend, name, state)
    answer = command(sock_path, line).strip()
    if answer:                     # HAProxy answers nothing when it did it
        raise BalancerError("%s: %s" % (line, answer))


def remove_server(sock_path, name, stop=None, backend=BACKEND, timeout=30):
    """Take ``name`` out: no new connection from now on, then ``stop()`` (the node
    closes its own clients, who reconnect through the balancer to another node), then
    end what is left through it and delete it.  Other servers' connections are untouched.
    """
    server = "%s/%s" % (backend, name)
    if name not in servers(sock_path, backend):
        raise BalancerError("no server %s" % server)
    command(sock_path, "set server %s state maint" % server)
    if stop is not None:
        stop()
    deadline = time.monotonic() + timeout
    while int(servers(sock_path, backend)[name]["scur"] or 0) > 0:
        if time.monotonic() > deadline:
            command(sock_path, "shutdown sessions server %s" % server)
            deadline = float("inf")
        time.sleep(POLL_S)
    _expect(sock_path, "del server %s" % server, "Server deleted")
