// The reader's own messages that are not in the conversation yet (#outbox): sending,
// waiting for the connection, or refused (shown with the server's detail, and a retry
// that reuses the same cid, so a retry after a lost answer never delivers twice).

// Refusals that may succeed later unchanged; the others need the text edited.
const RETRYABLE = new Set(["unavailable", "rate_limited", "timeout", "not_joined", "internal"]);

const STATE_TEXT = {
  sending: "Sending…",
  waiting: "Waiting for the connection; it will be sent when you are back.",
};

function newCid() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);   // (randomUUID needs a secure context; this does not)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Outbox {
  /**
   * @param list the #outbox element.
   * @param retry (item) -> send the item again (same cid).
   * @param edit (text) -> put the text back in the composer.
   */
  constructor(list, { retry, edit }) {
    this.list = list;
    this.retry = retry;
    this.edit = edit;
    this.items = new Map();   // cid -> {cid, text, state, attempt, seq, el}
  }

  /** A new outgoing message, shown at once as "sending". */
  add(text) {
    const item = { cid: newCid(), text, state: "sending", attempt: 0, seq: null, el: null };
    item.el = document.createElement("li");
    item.el.className = "outgoing";
    item.el.dataset.cid = item.cid;
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    body.dir = "auto";
    const state = document.createElement("p");
    state.className = "state";
    const actions = document.createElement("div");
    actions.className = "actions";
    item.el.append(body, state, actions);
    this.items.set(item.cid, item);
    this.list.append(item.el);
    this.show(item, "sending");
    return item;
  }

  get(cid) {
    return this.items.get(cid);
  }

  /** Items to (re)send once the page is in the room again. */
  unsent() {
    return [...this.items.values()].filter((i) => i.state === "waiting" || i.state === "sending");
  }

  /** A new attempt: answers to earlier attempts are ignored from now on. */
  nextAttempt(item) {
    item.attempt += 1;
    return item.attempt;
  }

  sending(item) { this.show(item, "sending"); }

  /** The connection dropped: what was in flight is sent again after the rejoin. */
  waitAll() {
    for (const item of this.items.values()) {
      if (item.state === "sending") {
        this.nextAttempt(item);
        this.show(item, "waiting");
      }
    }
  }

  waiting(item) { this.show(item, "waiting"); }

  /** Sequenced; it stays until the message itself shows up in the conversation. */
  sequenced(item, seq) { item.seq = seq; }

  /** The message is in the conversation: drop its outgoing copy. */
  delivered(cid) {
    const item = cid && this.items.get(cid);
    if (!item) return;
    this.items.delete(cid);
    const hadFocus = item.el.contains(document.activeElement);
    item.el.remove();
    if (hadFocus) this.edit(null);
  }

  /** After a gap: sequenced messages the reloaded history no longer holds are in the
   * room all the same (they were delivered before the gap); stop showing them as pending. */
  forgetSequenced() {
    for (const item of [...this.items.values()]) if (item.seq !== null) this.delivered(item.cid);
  }

  deliveredSeq(seq) {
    for (const item of this.items.values()) if (item.seq === seq) this.delivered(item.cid);
  }

  /** Refused: show the code's detail and what the reader can do about it. */
  failed(item, code, detail) {
    this.show(item, "failed", code, detail);
  }

  show(item, state, code, detail) {
    item.state = state;
    item.el.className = "outgoing " + state;
    const [, stateEl, actions] = item.el.children;
    actions.textContent = "";
    if (state !== "failed") {
      stateEl.textContent = STATE_TEXT[state];
      return;
    }
    stateEl.textContent = "Not sent: " + (detail || code) + (code ? " (" + code + ")" : "");
    if (RETRYABLE.has(code)) {
      actions.append(this.button("Retry", "Send this message again", () => this.retry(item)));
    } else {
      actions.append(this.button("Edit", "Put this message back in the message box to edit it",
        () => { this.discard(item); this.edit(item.text); }));
    }
    actions.append(this.button("Discard", "Forget this message", () => {
      this.discard(item);
      this.edit(null);
    }));
  }

  button(label, description, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = description;
    b.addEventListener("click", onClick);
    return b;
  }

  discard(item) {
    this.items.delete(item.cid);
    item.el.remove();
  }
}
