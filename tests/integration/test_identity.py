"""PROTOCOL.md "Identity" over real processes: Django accounts and sessions in the nodes'
shared database, logins through HAProxy, and the uid on join acks, messages and history.

Every test runs twice: on the default SQLite database and on a real PostgreSQL server
that the tests start themselves (tests/integration/postgres.py; skipped, saying why,
only when its binaries are not installed).
"""
import re
import time

import pytest
import requests

from harness.client import new_room
from harness.cluster import process_errors, start_cluster

from .postgres import PostgresServer

PASSWORD = "correct-horse-battery-9"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request, tmp_path_factory):
    """Broker + node1..node3 + HAProxy on one accounts database, with account ``alice``
    made by ``createsuperuser --noinput`` as Django documents it."""
    server = PostgresServer() if request.param == "postgresql" else None
    env = {"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"}
    if server is not None:
        env["DATABASE_URL"] = server.url
    try:
        c = start_cluster(tmp_path_factory.mktemp("identity-" + request.param), env=env)
        try:
            made = c.manage("createsuperuser", "--noinput", env={
                "DJANGO_SUPERUSER_USERNAME": "alice", "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
                "DJANGO_SUPERUSER_EMAIL": "alice@example.com"})
            assert made.returncode == 0, made.stdout + made.stderr
            yield c
        finally:
            c.stop()
        errors = process_errors(c)
        assert not errors, "tracebacks or errors in process logs:\n%s" % errors
    finally:
        if server is not None:
            server.stop()


def form_post(http, url, fields):
    """GET the form page, then POST ``fields`` with its CSRF token (cookie + field)."""
    page = http.get(url, timeout=10)
    assert page.status_code == 200, page.text[:500]
    token = CSRF_FIELD.search(page.text).group(1)
    return http.post(url, data=dict(fields, csrfmiddlewaretoken=token), allow_redirects=False,
                     timeout=10)


def logged_in(base, username, password=PASSWORD):
    """A requests session logged in through ``base``; its cookie jar holds ``sessionid``."""
    http = requests.Session()
    done = form_post(http, base + "/accounts/login/", {"username": username, "password": password})
    assert done.status_code == 302, done.text[:2000]
    return http


def guest_session(base):
    """A guest's cookies as a browser gets them: a room's page makes the session."""
    http = requests.Session()
    assert http.get(base + "/r/lobby/", timeout=10).status_code == 200
    assert "sessionid" in http.cookies
    return http


def test_login_through_the_balancer_gives_one_uid_on_every_node_and_binds_the_nick(cluster, client):
    http = logged_in(cluster.balancer_url, "ALICE")       # the username, any case
    cookies = {"sessionid": http.cookies["sessionid"]}
    room = new_room()
    on1 = client(cluster.url("node1"), name="mallory", cookies=cookies)
    on2 = client(cluster.url("node2"), name="alice2", cookies=cookies)
    first = on1.join(room)                                   # asks for "mallory"
    second = on2.join(room, nick=False)                      # asks for nothing
    assert first["nick"] == second["nick"] == "alice"
    assert first["uid"] == second["uid"] and first["uid"].startswith("a")
    assert on1.send(room, "from node1")["ok"] and on2.send(room, "from node2")["ok"]
    messages = on1.wait_messages(room, 2)
    assert {(m["nick"], m["uid"], m["node"]) for m in messages} == {
        ("alice", first["uid"], "node1"), ("alice", first["uid"], "node2")}
    page = http.get(cluster.balancer_url + "/r/%s/" % room, timeout=10).text
    assert 'id="whoami">alice<' in page and 'id="logout"' in page


def test_a_login_post_without_the_csrf_token_is_refused(cluster):
    http = requests.Session()
    http.get(cluster.balancer_url + "/accounts/login/", timeout=10)
    refused = http.post(cluster.balancer_url + "/accounts/login/",
                        data={"username": "alice", "password": PASSWORD}, timeout=10)
    assert refused.status_code == 403
    assert "sessionid" not in http.cookies


@pytest.mark.parametrize("nick", ["alice", "Alice", "ＡＬＩＣＥ"])
def test_a_guest_cannot_take_an_accounts_name(cluster, client, nick):
    guest = client(cluster.url("node2"), cookies=dict(guest_session(cluster.balancer_url).cookies))
    ack = guest.call("join", {"room": new_room(), "nick": nick})
    assert (ack["ok"], ack["error"]) == (False, "nick_taken")


def test_a_guest_session_keeps_its_uid_across_nodes_and_reconnects(cluster, client):
    cookies = dict(guest_session(cluster.balancer_url).cookies)
    room = new_room()
    uids = [client(cluster.url(node), name="gus", cookies=cookies).join(room)["uid"]
            for node in ("node1", "node2", "node1")]
    assert len(set(uids)) == 1 and uids[0].startswith("g")
    assert cookies["sessionid"] not in uids[0]
    # no cookie (or one naming no session): a fresh uid per connection
    fresh = [client(cluster.url("node1"), name="gus", cookies=cookie).join(room)["uid"]
             for cookie in (None, None, {"sessionid": "madeup0123456789madeup0123456789"})]
    assert len(set(fresh + uids[:1])) == 4 and all(uid.startswith("c") for uid in fresh)


def test_twin_guests_with_one_nick_are_told_apart_by_uid(cluster, client):
    room = new_room()
    twins = [client(cluster.url(node), name="bob",
                    cookies=dict(guest_session(cluster.balancer_url).cookies))
             for node in ("node1", "node2")]
    uids = [twin.join(room)["uid"] for twin in twins]
    assert uids[0] != uids[1]
    for twin in twins:
        assert twin.send(room, "I am bob")["ok"]
    seen = twins[0].wait_messages(room, 2)
    assert [m["nick"] for m in seen] == ["bob", "bob"]
    assert sorted(m["uid"] for m in seen) == sorted(uids)
    assert twins[0].call("members", {"room": room})["members"] == ["bob"]


def test_signup_logs_in_and_refuses_names_that_are_taken_or_not_nicks(cluster, client):
    base = cluster.balancer_url
    http = requests.Session()
    made = form_post(http, base + "/accounts/signup/", {
        "username": "Carol", "password1": PASSWORD, "password2": PASSWORD})
    assert made.status_code == 302, made.text[:2000]
    ack = client(cluster.url("node2"), name="x", cookies=dict(http.cookies)).join(new_room())
    assert (ack["nick"], ack["uid"][0]) == ("Carol", "a")
    for name in ("carol", "ｃａｒｏｌ", "zero\u200bwidth", "x" * 33):
        again = form_post(requests.Session(), base + "/accounts/signup/", {
            "username": name, "password1": PASSWORD, "password2": PASSWORD})
        assert again.status_code == 200 and 'class="field-error"' in again.text, name
    # logging out ends the session: its cookie makes a guest connection again
    cookie = http.cookies["sessionid"]
    token = CSRF_FIELD.search(http.get(base + "/", timeout=10).text).group(1)   # the lobby's logout form
    assert http.post(base + "/accounts/logout/", data={"csrfmiddlewaretoken": token},
                     allow_redirects=False, timeout=10).status_code == 302
    after = client(cluster.url("node1"), name="carol-guest", cookies={"sessionid": cookie})
    assert after.join(new_room())["uid"].startswith("c")


def test_uids_stay_in_history_and_after_a_broker_restart(cluster, client):
    room = new_room()
    alice = client(cluster.url("node1"), cookies={
        "sessionid": logged_in(cluster.balancer_url, "alice").cookies["sessionid"]})
    guest = client(cluster.url("node2"), name="gail",
                   cookies=dict(guest_session(cluster.balancer_url).cookies))
    uids = {"alice": alice.join(room)["uid"], "gail": guest.join(room)["uid"]}
    for who in (alice, guest):
        assert who.send(room, "before the restart")["ok"]
    alice.wait_messages(room, 2)

    cluster.broker.stop()
    cluster.start_broker()
    for name in ("node1", "node2"):
        cluster.wait_healthy(name, timeout=30)
    late = client(cluster.url("node2"), name="late")
    history = late.join(room)["history"]
    assert [(m["nick"], m["uid"]) for m in history] == [
        ("alice", uids["alice"]), ("gail", uids["gail"])]


# A logout's connections on another node end through the broker: a hop there and one back.
LOGOUT_REACH_S = 1.0


def log_out(http, base):
    """POST the lobby's logout form (Django's LogoutView takes POST only)."""
    token = CSRF_FIELD.search(http.get(base + "/", timeout=10).text).group(1)
    done = http.post(base + "/accounts/logout/", data={"csrfmiddlewaretoken": token},
                     allow_redirects=False, timeout=10)
    assert done.status_code == 302, done.status_code


def test_logout_ends_that_sessions_connections_on_every_node_and_no_others(cluster, client):
    base = cluster.balancer_url
    made = cluster.manage("createsuperuser", "--noinput", env={
        "DJANGO_SUPERUSER_USERNAME": "bert", "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        "DJANGO_SUPERUSER_EMAIL": "bert@example.com"})
    assert made.returncode == 0 or "already taken" in made.stderr, made.stdout + made.stderr
    room = new_room()
    http = logged_in(base, "alice")
    ending = [client(cluster.url(node), name="alice", cookies={"sessionid": http.cookies["sessionid"]})
              for node in ("node1", "node2")]
    others = {
        "alice's other session": client(cluster.url("node2"), name="alice", cookies={
            "sessionid": logged_in(base, "alice").cookies["sessionid"]}),
        "another account": client(cluster.url("node1"), name="bert", cookies={
            "sessionid": logged_in(base, "bert").cookies["sessionid"]}),
        "a guest": client(cluster.url("node2"), name="gina",
                          cookies=dict(guest_session(base).cookies)),
    }
    for c in ending + list(others.values()):
        c.join(room)
    log_out(http, base)
    ended_at = time.monotonic()
    for c in ending:
        assert c.disconnected.wait(LOGOUT_REACH_S - (time.monotonic() - ended_at)), c.url
    for who, c in others.items():
        assert c.sio.connected and not c.disconnected.is_set(), who
        assert c.send(room, "still speaking as %s" % who)["ok"], who
