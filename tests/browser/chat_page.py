"""The chat page as the tests see it: only the hooks of PROTOCOL.md "The chat page"
(#nick, #join, #text, #send, #messages with data-seq, .announcement, #status) plus the
footer's #node and the member list (#members)."""
import re

from playwright.sync_api import expect

NODE_NAME = re.compile(r"^node\d+$")

# Every #status change, recorded in the page: a state that lasts less than one of
# expect()'s polls (a quick reconnect) is still seen.
STATUS_RECORDER = """
window.__statusLog = [];
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  if (!status) return;
  const record = () => window.__statusLog.push(status.textContent);
  record();
  new MutationObserver(record).observe(status, {childList: true, characterData: true, subtree: true});
});
"""

ROWS_JS = """() => Array.from(document.querySelectorAll("#messages [data-seq]"), (el) => ({
  seq: Number(el.dataset.seq),
  nick: el.querySelector(".nick").textContent,
  text: el.querySelector(".text").textContent,
  own: el.classList.contains("own"),
}))"""


class ChatPage:
    """One browser page on /r/<room>/."""

    def __init__(self, page, room):
        self.page = page
        self.room = room
        self.status = page.locator("#status")
        self.messages = page.locator("#messages [data-seq]")
        self.announcements = page.locator("#messages .announcement")
        self.members = page.locator("#members li")
        self.node = page.locator("#node")

    @classmethod
    def open(cls, context, base_url, room, nick=None):
        """A new page on the room; joined as ``nick`` when given."""
        page = context.new_page()
        page.goto("%s/r/%s/" % (base_url, room))
        chat = cls(page, room)
        if nick is not None:
            chat.join(nick)
        return chat

    def join(self, nick):
        self.page.fill("#nick", nick)
        self.page.click("#join")
        self.expect_connected()

    def expect_connected(self):
        expect(self.status).to_have_text("connected")
        expect(self.node).to_have_text(NODE_NAME)

    def send(self, text, key="Enter"):
        """Type ``text`` and press Enter; it shows up once sequenced (see expect_texts)."""
        self.page.fill("#text", text)
        self.page.press("#text", key)

    def rows(self):
        """The conversation: [{seq, nick, text, own}] in page order."""
        return self.page.evaluate(ROWS_JS)

    def seqs(self):
        return [row["seq"] for row in self.rows()]

    def texts(self):
        return [row["text"] for row in self.rows()]

    def expect_texts(self, texts):
        """Wait until the conversation is exactly ``texts``, in this order."""
        expect(self.page.locator("#messages [data-seq] .text")).to_have_text(texts)

    def expect_members(self, nicks):
        expect(self.members).to_have_text(nicks)

    def status_log(self):
        return self.page.evaluate("window.__statusLog || []")

    def node_name(self):
        return self.node.text_content()

