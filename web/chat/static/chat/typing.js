// "alice is typing…" (#typing): who in this room is typing now, and this page's own
// typing notices. A notice is sent at most once per TYPING_SEND_MS while keys are
// pressed (the server passes on at most one per 2 s per connection anyway); a person's
// notice shows for TYPING_SHOW_MS after their last one, or until their message comes.

const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 5000;
const NAMES_SHOWN = 3;       // more are folded into "and N others"

export class TypingIndicator {
  /**
   * @param element #typing (a live region: it is read out as it changes).
   * @param socket the page's socket.io connection.
   * @param room this page's room.
   * @param isLive () -> true while the page is joined (notices make sense).
   */
  constructor(element, socket, room, isLive) {
    this.element = element;
    this.socket = socket;
    this.room = room;
    this.isLive = isLive;
    this.typists = new Map();   // uid -> { nick, timer }
    this.lastSent = 0;
    socket.on("typing", (t) => { if (t.room === room) this.typing(t); });
  }

  /** Keys pressed in the composer: tell the room, at most once per TYPING_SEND_MS. */
  keyPressed() {
    const now = Date.now();
    if (!this.isLive() || now - this.lastSent < TYPING_SEND_MS) return;
    this.lastSent = now;
    this.socket.emit("typing", { room: this.room }, () => {});
  }

  /** Our own message went out: the next key press is news again. */
  sent() {
    this.lastSent = 0;
  }

  typing({ uid, nick }) {
    const known = this.typists.get(uid);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopped(uid), TYPING_SHOW_MS);
    this.typists.set(uid, { nick, timer });
    this.render();
  }

  /** A message from ``uid`` arrived: they are done typing it. */
  stopped(uid) {
    const known = this.typists.get(uid);
    if (!known) return;
    clearTimeout(known.timer);
    this.typists.delete(uid);
    this.render();
  }

  clear() {
    for (const uid of [...this.typists.keys()]) this.stopped(uid);
  }

  render() {
    const nicks = [...this.typists.values()].map((t) => t.nick);
    let text = "";
    if (nicks.length === 0) text = "";
    else if (nicks.length === 1) text = nicks[0] + " is typing…";
    else if (nicks.length === 2) text = nicks[0] + " and " + nicks[1] + " are typing…";
    else if (nicks.length <= NAMES_SHOWN) {
      text = nicks.slice(0, -1).join(", ") + " and " + nicks[nicks.length - 1] + " are typing…";
    } else {
      const others = nicks.length - (NAMES_SHOWN - 1);
      text = nicks.slice(0, NAMES_SHOWN - 1).join(", ") + " and " + others + " others are typing…";
    }
    if (this.element.textContent !== text) this.element.textContent = text;
    this.element.hidden = !text;
  }
}
