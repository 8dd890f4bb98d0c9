// Where this account has read up to in the room (accounts only: the join ack's "read").
// On the first join the page draws a "new" divider above the first message after that
// position and scrolls to it; as messages are seen (shown on screen while the page is
// visible) it tells the server with `read`, at most once per READ_SEND_MS. The account's
// other tabs and devices hear it (the server's `read` event) and move along.

const READ_SEND_MS = 1000;
const UNREAD_SHOWN_MAX = 99;     // the server's count stops just above it (CHAT_UNREAD_MAX)

/** An account's unread messages in a room: counts stop at 99 ("99+"); guests have none. */
export function unreadBadge(unread) {
  const badge = document.createElement("span");
  badge.className = "unread";
  badge.hidden = !(unread > 0);
  badge.dataset.unread = String(unread || 0);
  badge.textContent = unread > UNREAD_SHOWN_MAX ? UNREAD_SHOWN_MAX + "+" : String(unread || 0);
  badge.title = badge.textContent + " unread";
  return badge;
}

export class ReadMarker {
  /**
   * @param list #messages (it scrolls; its message items carry data-seq).
   * @param socket the page's socket.io connection.
   * @param room this page's room.
   * @param isLive () -> true while the page is joined.
   */
  constructor(list, socket, room, isLive) {
    this.list = list;
    this.socket = socket;
    this.room = room;
    this.isLive = isLive;
    this.read = null;       // null: a guest (no position kept) or not joined yet
    this.seen = 0;          // the highest seq shown on screen while visible
    this.sentAt = 0;
    this.timer = null;
    this.divider = null;
    this.observer = new IntersectionObserver((entries) => this.shown(entries), { root: list });
    new MutationObserver((changes) => {
      for (const change of changes) {
        for (const node of change.addedNodes) {
          if (node.dataset && node.dataset.seq) this.observer.observe(node);
        }
      }
    }).observe(list, { childList: true });
    socket.on("read", (r) => {
      if (r.room === room && this.read !== null && r.seq > this.read) this.read = r.seq;
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.report(); });
  }

  /**
   * The join ack: remember the position; on the first join, draw the divider and scroll
   * to it. Returns true when it scrolled (the page then leaves the scrolling to it).
   */
  joined(ack, first) {
    if (typeof ack.read !== "number") return false;
    this.read = Math.max(this.read || 0, ack.read);
    this.seen = Math.max(this.seen, this.read);
    if (!first) return false;
    const next = [...this.list.querySelectorAll("[data-seq]")].find((item) =>
      Number(item.dataset.seq) > this.read && !item.classList.contains("own"));
    if (!next) return false;
    this.divider = document.createElement("li");
    this.divider.className = "new-divider";
    this.divider.id = "new-divider";
    this.divider.setAttribute("role", "separator");
    this.divider.textContent = "new";
    this.list.insertBefore(this.divider, next);
    this.list.scrollTop = Math.max(0, this.divider.offsetTop - this.list.offsetTop - 8);
    return true;
  }

  shown(entries) {
    if (document.hidden) return;
    for (const entry of entries) {
      if (entry.isIntersecting) this.seen = Math.max(this.seen, Number(entry.target.dataset.seq));
    }
    this.report();
  }

  /** Send the furthest seq seen, unless sent less than READ_SEND_MS ago (then later). */
  report() {
    if (this.read === null || this.seen <= this.read || !this.isLive() || this.timer) return;
    const wait = this.sentAt + READ_SEND_MS - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = null; this.report(); }, wait);
      return;
    }
    this.sentAt = Date.now();
    const seq = this.seen;
    this.socket.emit("read", { room: this.room, seq }, (ack) => {
      if (ack && ack.ok) this.read = Math.max(this.read, ack.read);
    });
  }
}
