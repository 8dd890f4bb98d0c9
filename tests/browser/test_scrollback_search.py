"""Scroll-back and search on the chat page in a real browser, through HAProxy, with the
archiver running: scrolling up walks back to the room's first message and marks it, the
view stays on the message it showed, and live messages meanwhile appear once each; a search
lists hits and choosing one loads the history back to it and shows it."""
import time

import pytest
from playwright.sync_api import expect

from harness.client import ChatClient, new_room

from .chat_page import ChatPage

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def archived(archiving_cluster):
    return archiving_cluster


@pytest.fixture
def writer(archived):
    made = []

    def connect(room):
        author = ChatClient(archived.url("node1"), name="ann")
        made.append(author)
        author.join(room)
        return author
    yield connect
    for author in made:
        author.close()


def fill(author, room, texts):
    for text in texts:
        assert author.send(room, text)["ok"]


def wait_history_reaches_first(author, room, timeout=60):
    """The archive holds the room back to its first message (history answers whole)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = author.call("history", {"room": room, "before": 2, "limit": 1})
        if page.get("ok") and [m["seq"] for m in page["messages"]] == [1]:
            return
        time.sleep(0.2)
    raise AssertionError("the archive did not reach %s's first message" % room)


TOP_AND_WAIT = """async () => {
  const list = document.getElementById("messages");
  const count = list.querySelectorAll("[data-seq]").length;
  const anchor = list.querySelector("[data-seq]");
  list.scrollTop = 0;
  const top = anchor.getBoundingClientRect().top;
  const until = Date.now() + 10000;
  while (list.querySelectorAll("[data-seq]").length === count && !list.querySelector(".room-start")
         && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => requestAnimationFrame(r));
  return {moved: Math.abs(anchor.getBoundingClientRect().top - top),
          count: list.querySelectorAll("[data-seq]").length,
          first: !!list.querySelector(".room-start")};
}"""


def test_scrolling_up_walks_back_to_the_first_message_keeping_the_view(archived, writer, contexts):
    room = new_room()
    author = writer(room)
    fill(author, room, ["line %d" % i for i in range(300)])
    wait_history_reaches_first(author, room)
    page = ChatPage.open(contexts(), archived.balancer_url, room, "reader")
    expect(page.messages).to_have_count(50)
    expect(page.page.locator(".room-start")).to_have_count(0)
    steps, live = [], 0
    for _ in range(20):
        step = page.page.evaluate(TOP_AND_WAIT)
        steps.append(step)
        fill(author, room, ["live %d" % live])     # a live message while pages load
        live += 1
        if step["first"]:
            break
    assert steps[-1]["first"], steps
    assert all(step["moved"] < 3 for step in steps), steps     # the view stayed put
    expect(page.messages).to_have_count(300 + live)
    assert page.seqs() == list(range(1, 301 + live))
    assert page.texts()[:2] == ["line 0", "line 1"]
    expect(page.page.locator("#messages > :first-child")).to_have_class("room-start")


def test_a_search_hit_opens_the_history_around_it(archived, writer, contexts):
    room = new_room()
    author = writer(room)
    fill(author, room, ["the heron flies at dawn"] + ["filler %d" % i for i in range(199)])
    wait_history_reaches_first(author, room)
    page = ChatPage.open(contexts(), archived.balancer_url, room, "finder")
    expect(page.messages).to_have_count(50)
    page.page.fill("#search", "HERONS")
    hits = page.page.locator("#search-results li")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("the heron flies at dawn")
    expect(hits.first).to_contain_text("ann")
    hits.first.locator("button").click()
    found = page.page.locator('#messages [data-seq="1"]')
    expect(found).to_be_in_viewport()
    expect(found).to_have_class("message found")
    assert page.seqs() == list(range(1, 201))
    page.page.fill("#search", "nothing like it")
    expect(page.page.locator("#search-status")).to_have_text("Nothing found.")
    expect(hits).to_have_count(0)
