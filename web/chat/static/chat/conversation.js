// The conversation list (#messages): chat messages kept in seq order and shown once each,
// announcements, and the page's own notices. Everything from users goes in as text, each
// piece isolated for display (<bdi>, dir="auto"): a right-to-left nick or text cannot
// reorder what is around it.

import { nickHue } from "./names.js";

const NEAR_BOTTOM_PX = 80;   // closer than this to the end counts as "reading the latest"
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const editedFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Show a message element as edited at ``ts`` (its text is set by the caller). */
export function markEdited(item, ts) {
  item.classList.add("edited");
  let label = item.querySelector(".edited-label");
  if (!label) {
    label = element("span", "edited-label", "edited");
    item.querySelector(".meta").append(" ", label);
  }
  label.title = "edited " + editedFormat.format(new Date(ts));
}

/** Show a message element as a tombstone: no text, no nick, no actions. */
export function markDeleted(item) {
  item.classList.remove("edited");
  item.classList.add("deleted");
  for (const gone of item.querySelectorAll(".guest, .edited-label, .edit-actions, form")) {
    gone.remove();
  }
  for (const emptied of item.querySelectorAll(".nick, .text")) emptied.textContent = "";
  item.querySelector(".text").hidden = false;
  item.setAttribute("aria-label", "deleted message");
}

/** A guest's message: its uid is of kind g (a browser session) or c (one connection). */
function isGuest(m) {
  return typeof m.uid === "string" && (m.uid[0] === "g" || m.uid[0] === "c");
}

function timeElement(ts) {
  const when = new Date(ts);
  const today = new Date().toDateString() === when.toDateString();
  const node = element("time", "time", (today ? timeFormat : dayTimeFormat).format(when));
  node.dateTime = when.toISOString();
  node.title = fullFormat.format(when);
  return node;
}

export class Conversation {
  /**
   * @param list the #messages element (it scrolls).
   * @param jump a button shown when messages arrive while the reader is scrolled up.
   * @param isOwn (message) -> true when the message is the reader's own.
   */
  constructor(list, jump, isOwn) {
    this.list = list;
    this.jump = jump;
    this.isOwn = isOwn;
    this.bySeq = new Map();   // seq -> element, for this epoch
    this.maxSeq = 0;
    jump.addEventListener("click", () => this.scrollToEnd());
    list.addEventListener("scroll", () => { if (this.atEnd()) jump.hidden = true; });
  }

  has(seq) {
    return this.bySeq.has(seq);
  }

  /** Forget every message (a new epoch or a gap): the next history starts over. */
  reset() {
    this.list.textContent = "";
    this.bySeq.clear();
    this.maxSeq = 0;
  }

  /** Show many messages at once (a join's history) without one live-region update each. */
  addMessages(messages) {
    this.list.setAttribute("aria-busy", "true");
    for (const m of messages) this.addMessage(m, { quiet: true });
    this.list.setAttribute("aria-busy", "false");
    this.scrollToEnd();
  }

  /** Add a chat message in seq order; false when that seq is already shown. */
  addMessage(m, { quiet = false } = {}) {
    if (this.bySeq.has(m.seq)) return false;
    const item = element("li", "message");
    item.dataset.seq = String(m.seq);
    if (m.uid) item.dataset.uid = m.uid;   // its author, for the actions on it (moderation.js)
    if (this.isOwn(m)) item.classList.add("own");
    const meta = element("div", "meta");
    const nick = element("bdi", "nick", m.nick);
    if (m.nick !== undefined) nick.style.setProperty("--hue", String(nickHue(m.nick)));   // a deleted one has none
    meta.append(nick, " ");
    if (isGuest(m)) {
      const badge = element("span", "guest", "guest");
      badge.title = "not logged in: anyone may use this nickname";
      meta.append(badge, " ");
    }
    meta.append(timeElement(m.ts));
    const text = element("p", "text", m.text);
    text.dir = "auto";
    item.append(meta, text);
    if (m.deleted) markDeleted(item);
    else if (m.edited) markEdited(item, m.edited);
    this.place(() => this.insertBySeq(item, m.seq), quiet);
    this.bySeq.set(m.seq, item);
    return true;
  }

  insertBySeq(item, seq) {
    if (seq > this.maxSeq) {
      this.list.append(item);   // the usual case: after any announcement shown before it
      this.maxSeq = seq;
      return;
    }
    let next = null;   // the shown message with the smallest seq above this one
    for (const [other, node] of this.bySeq) {
      if (other > seq && (next === null || other < Number(next.dataset.seq))) next = node;
    }
    this.list.insertBefore(item, next);
  }

  addAnnouncement(a) {
    const item = element("li", "announcement", a.text);
    item.dir = "auto";   // "<nick> joined": the nick's direction may be either
    if (a.ts) item.title = fullFormat.format(new Date(a.ts));
    this.place(() => this.list.append(item));
  }

  /** The page's own remark (reconnected, gap): not an announcement from the server. */
  addNotice(text, kind = "info") {
    const item = element("li", "notice notice-" + kind, text);
    this.place(() => this.list.append(item));
  }

  /** Insert, then keep following the end if the reader was there, else offer to jump. */
  place(insert, quiet = false) {
    const follow = this.atEnd();
    insert();
    if (quiet) return;
    if (follow) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  atEnd() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.jump.hidden = true;
  }
}
