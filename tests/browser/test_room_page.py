"""The chat page in a real browser, through HAProxy to three nodes."""
from playwright.sync_api import expect

from harness.client import new_room

from .chat_page import ChatPage


def test_two_people_on_different_nodes_chat_both_ways_in_the_same_order(cluster, two_nodes):
    room = new_room()
    ann, bob = two_nodes(cluster.balancer_url, room)
    assert ann.node_name() != bob.node_name()
    # interleaved, without waiting for each other: the broker's order is the only order
    for i in range(3):
        ann.send("ann says %d" % i)
        bob.send("bob says %d" % i)
    for page in (ann, bob):
        expect(page.messages).to_have_count(6)
    rows = ann.rows()
    assert [(r["seq"], r["nick"], r["text"]) for r in rows] == \
        [(r["seq"], r["nick"], r["text"]) for r in bob.rows()]
    assert [r["seq"] for r in rows] == list(range(1, 7))
    assert sorted(r["text"] for r in rows) == sorted(
        ["ann says %d" % i for i in range(3)] + ["bob says %d" % i for i in range(3)])
    # each page marks its own messages, and only those
    assert all(r["own"] == (r["nick"] == "ann") for r in ann.rows())
    assert all(r["own"] == (r["nick"] == "bob") for r in bob.rows())
    # the send button works as well as Enter
    bob.page.fill("#text", "clicked")
    bob.page.click("#send")
    for page in (ann, bob):
        expect(page.messages.last).to_contain_text("clicked")
        expect(page.messages.last).to_contain_text("bob")


def test_reload_shows_the_history_and_remembers_the_nick(cluster, contexts):
    room = new_room()
    page = ChatPage.open(contexts(), cluster.balancer_url, room, "carol")
    for text in ("first", "second", "third"):
        page.send(text)
    page.expect_texts(["first", "second", "third"])
    before = page.seqs()
    page.page.reload()
    expect(page.page.locator("#nick")).to_have_value("carol")
    page.expect_connected()   # a remembered nick joins by itself
    page.expect_texts(["first", "second", "third"])
    assert page.seqs() == before
    # a newcomer gets the same history
    late = ChatPage.open(contexts(), cluster.balancer_url, room, "dave")
    late.expect_texts(["first", "second", "third"])
    assert late.seqs() == before


def test_member_list_updates_on_both_pages(cluster, two_nodes, contexts):
    room = new_room()
    ann, bob = two_nodes(cluster.balancer_url, room)
    for page in (ann, bob):
        page.expect_members(["ann", "bob"])
        expect(page.page.locator("#member-count")).to_have_text("2")
    expect(ann.page.locator("#members li.me")).to_have_text("ann")
    cat = ChatPage.open(contexts(), cluster.balancer_url, room, "cat")
    for page in (ann, bob, cat):
        page.expect_members(["ann", "bob", "cat"])
    expect(ann.announcements.last).to_have_text("cat joined")
    cat.page.context.close()
    for page in (ann, bob):
        page.expect_members(["ann", "bob"])
        expect(page.announcements.last).to_have_text("cat left")


def test_html_in_messages_and_nicks_is_shown_as_text(cluster, contexts):
    room = new_room()
    attack = '<img src=x onerror="window.__xss=1">'
    nick = "<b onmouseover=x>eve</b>"
    eve = ChatPage.open(contexts(), cluster.balancer_url, room, nick)
    reader = ChatPage.open(contexts(), cluster.balancer_url, room, "reader")
    eve.send(attack)
    eve.send("<script>window.__xss=2</script>")
    for page in (eve, reader):
        page.expect_texts([attack, "<script>window.__xss=2</script>"])
        expect(page.page.locator("#messages .nick").first).to_have_text(nick)
        page.expect_members(sorted([nick, "reader"]))
        expect(page.page.locator("#messages img, #messages script, #messages b")).to_have_count(0)
        expect(page.page.locator("#members b")).to_have_count(0)
        assert page.page.evaluate("window.__xss") is None
    # a reload renders the history the same way
    reader.page.reload()
    reader.expect_connected()
    reader.expect_texts([attack, "<script>window.__xss=2</script>"])
    assert reader.page.evaluate("window.__xss") is None


def test_a_refused_message_is_shown_inline_with_the_servers_detail(cluster, contexts):
    room = new_room()
    page = ChatPage.open(contexts(), cluster.balancer_url, room, "fay")
    page.send("x" * 2001)
    failed = page.page.locator("#outbox .failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("invalid_text")
    expect(failed).to_contain_text("2000")
    # not retryable as it is: Edit puts it back in the message box
    expect(failed.get_by_role("button", name="Retry")).to_have_count(0)
    failed.get_by_role("button", name="Edit").click()
    expect(failed).to_have_count(0)
    expect(page.page.locator("#text")).to_have_value("x" * 2001)
    expect(page.page.locator("#text")).to_be_focused()
    page.send("short enough")
    page.expect_texts(["short enough"])


def test_rate_limited_messages_can_be_retried_with_their_cid(cluster, contexts):
    room = new_room()
    page = ChatPage.open(contexts(), cluster.balancer_url, room, "gus")
    burst = ["burst %02d" % i for i in range(45)]   # the default limit allows bursts of 40
    page.page.evaluate("""(texts) => {
      const box = document.getElementById("text");
      for (const text of texts) {
        box.value = text;
        box.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
      }
    }""", burst)
    outbox = page.page.locator("#outbox li")
    expect(page.page.locator("#outbox .sending")).to_have_count(0)
    failed = page.page.locator("#outbox .failed")
    refused = failed.count()
    assert refused >= 1
    expect(failed.first).to_contain_text("rate_limited")
    expect(page.messages).to_have_count(45 - refused)
    while outbox.count():
        before = outbox.count()
        failed.first.get_by_role("button", name="Retry").click()
        expect(outbox).to_have_count(before - 1)   # sequenced and shown: its outgoing copy goes
    expect(page.messages).to_have_count(45)
    texts = page.texts()
    assert sorted(texts) == burst                   # each once
    assert page.seqs() == list(range(1, 46))


def test_a_phone_sized_page_works_with_the_keyboard_alone(cluster, contexts):
    room = new_room()
    ctx = contexts(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.goto("%s/r/%s/" % (cluster.balancer_url, room))
    chat = ChatPage(page, room)
    # labelled controls, the nickname box focused first
    expect(page.get_by_label("Nickname", exact=True)).to_be_focused()
    expect(page.get_by_label("Message", exact=True)).to_be_disabled()
    page.keyboard.type("kim")
    page.keyboard.press("Enter")
    chat.expect_connected()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.keyboard.type("typed on a phone")
    page.keyboard.press("Enter")
    chat.expect_texts(["typed on a phone"])
    page.keyboard.type("one")
    page.keyboard.press("Shift+Enter")     # a new line, not a send
    page.keyboard.type("two")
    page.keyboard.press("Tab")
    expect(page.locator("#send")).to_be_focused()
    page.keyboard.press("Enter")
    expect(chat.messages).to_have_count(2)
    assert chat.texts() == ["typed on a phone", "one\ntwo"]
    expect(page.locator("#messages")).to_have_attribute("aria-live", "polite")
    for hook in ("#status", "#text", "#send", "#members", "#node"):
        expect(page.locator(hook)).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
