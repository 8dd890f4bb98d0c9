// Scroll-back: reaching the top of #messages loads the page of messages before the oldest
// one shown (`history` with `before`), until the room's first, which gets a marker.
// The message the reader was looking at stays where it was. Pages and live messages both
// go through the Conversation, which places by seq and shows each seq once: a live message
// that arrives while a page loads is neither lost nor doubled.

const TOP_PX = 150;            // this close to the top counts as "wants older messages"
const PAGE = 50;               // messages per scroll-back page
const JUMP_PAGE = 100;         // per page while walking back to a search hit (contract's max)
const HISTORY_TIMEOUT_MS = 8000;
const RETRY_MS = 1000;         // after "unavailable" (the archive catching up) or a timeout
const MAX_JUMP_PAGES = 200;    // a jump walks back at most this far (20,000 messages)

export class ScrollBack {
  /**
   * @param list the #messages element.
   * @param conversation the page's Conversation.
   * @param ask (payload) -> Promise of the `history` ack, or null while not joined.
   * @param room the room's name (for the beginning's marker).
   */
  constructor(list, conversation, ask, room) {
    this.list = list;
    this.conversation = conversation;
    this.ask = ask;
    this.room = room;
    this.epoch = null;
    this.first = false;       // the room's first message is shown
    this.loading = null;      // the page being loaded: a Promise
    this.generation = 0;      // bumped by a reset: answers for an older list are dropped
    list.addEventListener("scroll", () => { if (this.wantsOlder()) this.loadOlder(); });
  }

  /** After every join ack: a gap or a new epoch starts over; then fill a short list. */
  joined(ack, reset) {
    if (reset || ack.epoch !== this.epoch) {
      this.generation += 1;
      this.loading = null;
      this.first = false;
    }
    this.epoch = ack.epoch;
    if (this.oldestSeq() === 1) this.markFirst();
    this.fill();
  }

  oldestSeq() {
    let oldest = null;
    for (const seq of this.conversation.bySeq.keys()) if (oldest === null || seq < oldest) oldest = seq;
    return oldest;
  }

  wantsOlder() {
    return !this.first && this.list.scrollTop < TOP_PX;
  }

  /** A list too short to scroll never sees a scroll event: load until it scrolls or is whole. */
  fill() {
    if (!this.first && this.list.scrollHeight <= this.list.clientHeight + TOP_PX) {
      this.loadOlder().then((loaded) => { if (loaded) this.fill(); });
    }
  }

  /** Load the page before the oldest message shown; resolves true when one was added. */
  loadOlder(limit = PAGE) {
    if (this.loading) return this.loading;
    if (this.first || this.epoch === null) return Promise.resolve(false);
    const generation = this.generation;
    const oldest = this.oldestSeq();
    const payload = oldest === null ? { room: this.room, limit } : { room: this.room, before: oldest, limit };
    const pending = this.ask(payload);
    if (pending === null) return Promise.resolve(false);
    this.list.setAttribute("aria-busy", "true");
    const pause = () => new Promise((resolve) => setTimeout(resolve, RETRY_MS)).then(() => false);
    const done = () => {
      if (generation !== this.generation) return false;
      this.loading = null;
      this.list.setAttribute("aria-busy", "false");
      return true;
    };
    this.loading = pending.then((ack) => {
      if (!done()) return false;
      if (!ack.ok || ack.epoch !== this.epoch) return pause();
      this.prepend(ack.messages);
      if (ack.first) this.markFirst();
      return ack.messages.length > 0;
    }, () => (done() ? pause() : false));
    return this.loading;
  }

  /** Add older messages above, keeping the message at the top of the view where it was. */
  prepend(messages) {
    const oldest = this.oldestSeq();
    const anchor = oldest === null ? null : this.conversation.bySeq.get(oldest);
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    for (const m of messages) this.conversation.addMessage(m, { quiet: true });
    if (!anchor) return;
    const keep = () => { this.list.scrollTop += anchor.getBoundingClientRect().top - before; };
    keep();
    // Other scripts dress new messages after they are added (their observers run after this):
    // once they have, before the next paint, put the anchor back again, unless the view was
    // moved on purpose meanwhile (a jump to a search hit).
    const placed = this.list.scrollTop;
    requestAnimationFrame(() => { if (this.list.scrollTop === placed) keep(); });
  }

  markFirst() {
    this.first = true;
    if (this.list.querySelector(".room-start")) return;
    const marker = document.createElement("li");
    marker.className = "room-start";
    marker.textContent = "This is the beginning of #" + this.room + ".";
    this.list.prepend(marker);
  }

  /** Load back until message `seq` is shown (or the room's first is); resolves its element. */
  async reach(seq) {
    const generation = this.generation;
    for (let pages = 0; pages < MAX_JUMP_PAGES; pages += 1) {
      if (this.conversation.has(seq) || this.first || generation !== this.generation) break;
      const oldest = this.oldestSeq();
      if (oldest !== null && oldest < seq) break;      // no such message shown: deleted, gone
      await this.loadOlder(JUMP_PAGE);
    }
    return this.conversation.bySeq.get(seq) || null;
  }
}
