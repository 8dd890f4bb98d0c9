"""The archive in the Django admin of a real node: staff search it by room, nick and text,
and nobody adds, changes or deletes its rows there."""
import re

import pytest
import requests

from harness.cluster import process_errors, start_cluster

from .test_identity import PASSWORD, logged_in

pytestmark = pytest.mark.timeout(120)

# Written by the archive's own writer, as the archiver does.
FILL = """
from archive.writer import write
def m(room, seq, nick, text, **more):
    return "e" * 32, dict(id="id%s%d" % (room, seq), seq=seq, room=room, nick=nick, text=text,
                          ts=1000 + seq, node="node1", cid=None, uid="a" + "0" * 20, **more)
write([m("harbour", 1, "ann", "the tide is high"), m("harbour", 2, "bob", "low tide soon"),
       m("meadow", 1, "cat", "sheep everywhere"),
       m("meadow", 2, "cat", "", kind="delete", target=1)])
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("archive-admin"), nodes=("node1",), balancer=False)
    try:
        for argv, env in ((("createsuperuser", "--noinput"), {
                "DJANGO_SUPERUSER_USERNAME": "staff", "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
                "DJANGO_SUPERUSER_EMAIL": "staff@example.com"}),
                          (("shell", "-c", FILL), {})):
            done = c.manage(*argv, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
        yield c
    finally:
        c.stop()
    # The refused add and delete pages are logged by Django with their PermissionDenied.
    errors = process_errors(c, allow=[r"PermissionDenied"])
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


@pytest.fixture(scope="module")
def staff(cluster):
    return logged_in(cluster.url("node1"), "staff")


@pytest.mark.parametrize("q,found,absent", [
    ("harbour", ["the tide is high", "low tide soon"], ["sheep"]),   # by room
    ("bob", ["low tide soon"], ["the tide is high"]),                 # by nick
    ("tide", ["the tide is high", "low tide soon"], ["sheep"]),       # by text
    ("sheep", [], ["the tide is high"]),                               # a deleted text is gone
])
def test_staff_search_the_archive_by_room_nick_and_text(cluster, staff, q, found, absent):
    page = staff.get(cluster.url("node1") + "/admin/archive/roomevent/", params={"q": q}, timeout=10)
    assert page.status_code == 200
    for text in found:
        assert text in page.text
    for text in absent:
        assert text not in page.text


def test_the_admin_neither_adds_changes_nor_deletes_archived_events(cluster, staff):
    base = cluster.url("node1") + "/admin/archive/roomevent/"
    assert staff.get(base + "add/", timeout=10).status_code == 403
    listing = staff.get(base, timeout=10).text
    assert "the tide is high" in listing
    # the one action is a sequenced delete (test_edits.py), never Django's row delete
    assert 'value="delete_for_everyone"' in listing and 'value="delete_selected"' not in listing
    row = re.search(r"/admin/archive/roomevent/(\d+)/change/", listing).group(1)
    shown = staff.get(base + row + "/change/", timeout=10)
    assert shown.status_code == 200 and 'name="_save"' not in shown.text      # view only
    assert staff.get(base + row + "/delete/", timeout=10).status_code == 403


def test_the_archive_admin_is_for_staff_only(cluster):
    page = cluster.url("node1") + "/admin/archive/roomevent/"
    anonymous = requests.get(page, timeout=10, allow_redirects=False)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous.headers["Location"]
