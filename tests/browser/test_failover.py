"""The page across failures: a node stops, the broker restarts (each test has its own cluster)."""
import pytest
from playwright.sync_api import expect

from harness.client import ChatClient, new_room
from harness.cluster import start_cluster
from harness.processes import wait_until

from .chat_page import ChatPage


@pytest.fixture
def own_cluster(tmp_path):
    made = []

    def start(**kwargs):
        made.append(start_cluster(tmp_path / ("cluster%d" % len(made)), **kwargs))
        return made[-1]
    yield start
    for c in made:
        c.stop()


def _wait_until_sequencing(url):
    """Until a message sent through the node at ``url`` is sequenced again (its
    /healthz may not have noticed that the broker was away at all)."""
    probe = ChatClient(url, name="probe")
    room = new_room("probe")
    joined = []

    def sequenced():
        if not joined:     # a join, too, may be refused "unavailable" while the broker is away
            if not probe.call("join", {"room": room, "nick": "probe"})["ok"]:
                return False
            joined.append(room)
        return probe.send(room, "probe")["ok"]
    try:
        wait_until(sequenced, 30, "the broker to sequence again", interval=0.5)
    finally:
        probe.close()


def _wait_for_status(page, status):
    page.page.wait_for_function("(s) => (window.__statusLog || []).includes(s)", arg=status)


@pytest.mark.timeout(240)
def test_a_page_whose_node_stops_reconnects_via_another_and_loses_nothing(own_cluster, two_nodes):
    cluster = own_cluster()
    room = new_room()
    ann, bob = two_nodes(cluster.balancer_url, room)
    ann.send("before 1")
    bob.send("before 2")
    for page in (ann, bob):
        expect(page.messages).to_have_count(2)
    doomed = ann.node_name()

    cluster.nodes[doomed][0].stop()
    # while ann is away, bob keeps talking, and ann writes something too
    for i in range(3):
        bob.send("while away %d" % i)
    ann.send("from ann meanwhile")

    _wait_for_status(ann, "reconnecting")
    ann.expect_connected()
    log = ann.status_log()
    assert log.index("reconnecting") < len(log) - 1 - log[::-1].index("connected"), log
    assert ann.node_name() != doomed
    expect(bob.status).to_have_text("connected")
    assert bob.status_log().count("reconnecting") == 0   # the others notice nothing

    for page in (ann, bob):
        expect(page.messages).to_have_count(6)
    assert ann.seqs() == bob.seqs() == list(range(1, 7))
    assert ann.rows() != [] and [(r["nick"], r["text"]) for r in ann.rows()] == \
        [(r["nick"], r["text"]) for r in bob.rows()]
    assert sorted(ann.texts()) == sorted(
        ["before 1", "before 2", "from ann meanwhile"] + ["while away %d" % i for i in range(3)])
    expect(ann.page.locator("#outbox li")).to_have_count(0)
    # and the conversation goes on, both ways
    ann.send("back")
    bob.send("welcome back")
    for page in (ann, bob):
        expect(page.messages).to_have_count(8)
    assert ann.seqs() == bob.seqs() == list(range(1, 9))
    ann.expect_members(["ann", "bob"])


@pytest.mark.timeout(240)
def test_a_page_that_missed_too_much_reloads_the_history_and_says_so(own_cluster, two_nodes):
    cluster = own_cluster(env={"CHAT_HISTORY_SIZE": "3"})
    room = new_room()
    ann, bob = two_nodes(cluster.balancer_url, room)
    ann.send("seen by ann")
    expect(bob.messages).to_have_count(1)
    # ann's node goes away and ann cannot get back until bob has said more than the
    # replay buffer holds
    ann.page.route("**/socket.io/**", lambda route: route.abort())
    cluster.nodes[ann.node_name()][0].stop()
    _wait_for_status(ann, "reconnecting")
    for i in range(5):
        bob.send("missed %d" % i)
    expect(bob.messages).to_have_count(6)
    ann.page.unroute("**/socket.io/**")

    ann.expect_connected()
    expect(ann.page.locator("#messages .notice-warning", has_text="missed")).to_have_count(1)
    ann.expect_texts(["missed 2", "missed 3", "missed 4"])   # the buffer, nothing older
    assert ann.seqs() == [4, 5, 6]
    ann.send("caught up")
    for page in (ann, bob):
        expect(page.messages.last).to_contain_text("caught up")
    assert ann.seqs() == [4, 5, 6, 7]


@pytest.mark.timeout(240)
def test_a_message_refused_while_the_broker_is_down_can_be_retried(own_cluster, contexts):
    cluster = own_cluster(nodes=("node1",), balancer=False)
    room = new_room()
    page = ChatPage.open(contexts(), cluster.url("node1"), room, "hal")
    page.send("before")
    page.expect_texts(["before"])

    cluster.broker.stop()
    page.send("while the broker is down")
    failed = page.page.locator("#outbox .failed")
    expect(failed).to_contain_text("unavailable")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.messages).to_have_count(1)

    cluster.start_broker()
    _wait_until_sequencing(cluster.url("node1"))
    failed.get_by_role("button", name="Retry").click()
    expect(page.messages.last).to_contain_text("while the broker is down")
    page.expect_connected()
    expect(page.page.locator("#outbox li")).to_have_count(0)
    # (a broker without durable state starts a new epoch: the page then reloads the
    # history, so "before" may be gone; the retried message is there exactly once)
    assert page.texts().count("while the broker is down") == 1


@pytest.mark.timeout(180)
def test_a_page_refused_by_a_full_node_says_why_and_gets_in_later(own_cluster, contexts):
    cluster = own_cluster(nodes=("node1",), balancer=False, env={"CHAT_MAX_CONNECTIONS": "1"})
    room = new_room()
    first = ChatPage.open(contexts(), cluster.url("node1"), room, "ivy")
    second = ChatPage.open(contexts(), cluster.url("node1"), room)
    second.page.fill("#nick", "jon")
    second.page.click("#join")
    expect(second.status).to_have_text("reconnecting")
    expect(second.page.locator("#banner")).to_contain_text("at most 1 connections")
    first.page.context.close()          # room for one more
    second.expect_connected()
    expect(second.page.locator("#banner")).to_be_hidden()
    second.expect_members(["jon"])
