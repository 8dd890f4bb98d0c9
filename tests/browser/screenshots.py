"""Take docs/screenshots/*.png: the lobby, a room with two people chatting (ann logged in,
bob a guest), and the signup page.

Run by scripts/screenshots. It starts its own cluster behind HAProxy on free loopback
ports and drives the same Chromium as the browser tests, then stops everything.
"""
import argparse
import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from harness.client import ChatClient
from harness.cluster import process_errors, start_cluster
from harness.processes import ROOT

from .chat_page import ChatPage
from .chromium import check_tools, launch_chromium

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1100, "height": 680}
PHONE = {"width": 390, "height": 760}
TIMEOUT_MS = 20000
ROOM = "general"
CONVERSATION = [
    ("ann", "Morning! Did the new build go out?"),
    ("bob", "Yes, the nodes restart one at a time after lunch."),
    ("ann", "So my page hops to another node for a moment?"),
    ("bob", "It picks up where it left off: nothing missed, nothing twice."),
    ("ann", "<b>Nice</b>, and markup stays plain text.\nLunch at 12:30?"),
    ("bob", "Sounds good, see you there."),
]
# Other rooms for the lobby, filled by plain Socket.IO clients spread over the nodes.
BACKGROUND = {"design-review": ["cat", "dan", "eve"], "random": ["fay"], "help_desk": ["gus"]}


def _context(browser, viewport):
    ctx = browser.new_context(viewport=viewport, device_scale_factor=1, color_scheme="light",
                              locale="en-US")
    ctx.set_default_timeout(TIMEOUT_MS)
    return ctx


def _settle(page):
    """No focus ring and no caret in the picture; scrolled to the latest message."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate("() => { const m = document.getElementById('messages');"
                  " if (m) m.scrollTop = m.scrollHeight; }")


def take(browser, cluster, out):
    base = cluster.balancer_url
    clients = []
    try:
        node_urls = [cluster.url(name) for name in sorted(cluster.nodes)]
        for i, (room, nicks) in enumerate(BACKGROUND.items()):
            for j, nick in enumerate(nicks):
                client = ChatClient(node_urls[(i + j) % len(node_urls)], name=nick)
                clients.append(client)
                client.join(room)

        ann_context = _context(browser, DESKTOP)
        signup = ann_context.new_page()
        signup.goto("%s/accounts/signup/?next=/r/%s/" % (base, ROOM))
        signup.fill("#id_username", "ann")
        _settle(signup)
        signup.screenshot(path=str(out / "signup.png"))
        signup.fill("#id_password1", "screenshot-horse-battery")
        signup.fill("#id_password2", "screenshot-horse-battery")
        signup.click("button[type=submit]")   # logged in, on the room: joins as ann
        ann = ChatPage(signup, ROOM)
        ann.expect_connected()
        bob = ChatPage.open(_context(browser, PHONE), base, ROOM, "bob")
        for nick, text in CONVERSATION:
            (ann if nick == "ann" else bob).send(text)
            expect(ann.messages.last).to_contain_text(text.split("\n")[0])
        for page in (ann, bob):
            expect(page.messages).to_have_count(len(CONVERSATION))
            page.expect_members(["ann", "bob"])
            _settle(page.page)
        ann.page.screenshot(path=str(out / "room.png"))
        bob.page.screenshot(path=str(out / "room-phone.png"))

        lobby = _context(browser, DESKTOP).new_page()
        lobby.goto(base + "/")
        lobby.fill("#nick", "dora")   # a guest: "ann" is an account now
        for room, nicks in list(BACKGROUND.items()) + [(ROOM, ["ann", "bob"])]:
            expect(lobby.locator('#rooms a[data-room="%s"] .count' % room)).to_have_attribute(
                "data-members", str(len(nicks)))
        expect(lobby.locator("#rooms-state")).to_have_text("live")
        _settle(lobby)
        lobby.screenshot(path=str(out / "lobby.png"))
    finally:
        for client in clients:
            client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the PNGs")
    args = parser.parse_args()
    check_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="chat-screenshots-"))
    cluster = start_cluster(logs)
    ok = False
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                take(browser, cluster, args.out)
            finally:
                browser.close()
        ok = not process_errors(cluster)
    finally:
        cluster.stop()
    if not ok:
        raise SystemExit("screenshots: something failed; process logs are in %s" % logs)
    shutil.rmtree(logs, ignore_errors=True)
    for name in ("lobby.png", "room.png", "room-phone.png", "signup.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
