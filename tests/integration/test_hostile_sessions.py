"""Sessions an anonymous visitor can make: none for pages that do not need one, and
expired ones deleted when the cluster starts (scripts/setup)."""
import subprocess

import requests

from harness.processes import ROOT

COUNT_SESSIONS = ("from django.contrib.sessions.models import Session; "
                  "print(Session.objects.count())")
EXPIRED_SESSION = ("import datetime; from django.contrib.sessions.models import Session; "
                   "Session.objects.create(session_key='expired' * 4, session_data='x', "
                   "expire_date=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))")


def sessions(cluster):
    done = cluster.manage("shell", "-c", COUNT_SESSIONS)
    assert done.returncode == 0, done.stdout + done.stderr
    return int(done.stdout.split()[-1])


def test_cookieless_views_store_no_session_but_a_room_page_and_setup_clears_expired_ones(make_cluster):
    cluster = make_cluster()
    cluster.start_broker()
    cluster.start_node("node1")
    base = cluster.url("node1")
    before = sessions(cluster)
    for _ in range(20):
        for page in ("/", "/accounts/login/", "/accounts/signup/", "/healthz", "/metrics"):
            assert requests.get(base + page, timeout=10).status_code == 200
    assert sessions(cluster) == before
    room = requests.get(base + "/r/lobby/", timeout=10)      # a guest chats here: one session
    assert room.status_code == 200 and "sessionid" in room.cookies
    assert sessions(cluster) == before + 1

    made = cluster.manage("shell", "-c", EXPIRED_SESSION)
    assert made.returncode == 0, made.stdout + made.stderr
    assert sessions(cluster) == before + 2
    setup = subprocess.run([str(ROOT / "scripts/setup")], cwd=ROOT, env=cluster.env,
                           capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert sessions(cluster) == before + 1
