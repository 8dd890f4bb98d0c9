// The search box: #search asks `search` after a pause in typing (or at Enter), in this room
// or every room (#search-scope); the hits, newest first, go in #search-results as text.
// Choosing a hit of this room jumps to it (the page loads the history back to it); a hit
// of another room opens that room's page at it (/r/<room>/#seq=<seq>).

import { element } from "./conversation.js";

const PAUSE_MS = 350;          // typing pauses this long before a search goes out
const SEARCH_TIMEOUT_MS = 8000;
const Q_MAX = 200;             // the contract's bound on q
const SNIPPET_CHARS = 160;

const dayTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});

export class SearchBox {
  /**
   * @param socket the page's Socket.IO socket (a search needs a connection, not a join).
   * @param room this page's room.
   * @param jump (seq) -> Promise of the message's element in #messages, or null.
   */
  constructor(socket, room, jump) {
    this.socket = socket;
    this.room = room;
    this.jump = jump;
    this.form = document.getElementById("searchform");
    this.input = document.getElementById("search");
    this.scope = document.getElementById("search-scope");
    this.results = document.getElementById("search-results");
    this.status = document.getElementById("search-status");
    this.timer = null;
    this.asked = 0;            // only the latest search's answer is shown
    this.input.maxLength = Q_MAX;
    this.input.addEventListener("input", () => this.soon());
    this.scope.addEventListener("change", () => this.now());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.now();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.clear();
    });
  }

  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.now(), PAUSE_MS);
  }

  clear() {
    this.input.value = "";
    this.asked += 1;
    this.show(null);
  }

  now() {
    clearTimeout(this.timer);
    const q = this.input.value.trim().slice(0, Q_MAX);
    const asked = ++this.asked;
    if (!q) {
      this.show(null);
      return;
    }
    if (!this.socket.connected) {
      this.say("Not connected; search again once connected.");
      return;
    }
    const req = this.scope.value === "all" ? { q } : { q, room: this.room };
    this.say("Searching…");
    this.socket.timeout(SEARCH_TIMEOUT_MS).emit("search", req, (err, ack) => {
      if (asked !== this.asked) return;
      if (err) this.say("No answer from the server; try again.");
      else if (!ack.ok) this.say(ack.detail || "Search refused.");
      else this.show(ack.hits);
    });
  }

  say(text) {
    this.status.textContent = text;
    this.status.hidden = false;
  }

  /** The hits, or nothing (null: the box is empty). */
  show(hits) {
    this.results.textContent = "";
    this.results.hidden = hits === null;
    this.status.hidden = hits === null;
    if (hits === null) return;
    this.status.textContent = hits.length ? `${hits.length} message${hits.length === 1 ? "" : "s"} found`
      : "Nothing found.";
    for (const hit of hits) this.results.append(this.hitElement(hit));
  }

  hitElement(hit) {
    const item = element("li", "hit");
    item.dataset.seq = String(hit.seq);
    item.dataset.room = hit.room;
    const button = element("button", "hit-button");
    button.type = "button";
    const meta = element("span", "meta");
    const nick = element("bdi", "nick", hit.nick);
    meta.append(nick, " ");
    if (hit.room !== this.room) meta.append(element("span", "hit-room", "#" + hit.room), " ");
    meta.append(element("time", "time", dayTimeFormat.format(new Date(hit.ts))));
    const text = hit.text.length > SNIPPET_CHARS ? hit.text.slice(0, SNIPPET_CHARS) + "…" : hit.text;
    const body = element("span", "text", text);
    body.dir = "auto";
    button.append(meta, body);
    button.addEventListener("click", () => this.open(hit));
    item.append(button);
    return item;
  }

  open(hit) {
    if (hit.room !== this.room) {
      window.location.assign(`/r/${encodeURIComponent(hit.room)}/#seq=${hit.seq}`);
      return;
    }
    this.say("Loading the conversation around it…");
    this.jump(hit.seq).then((found) => {
      this.say(found ? "Shown in the conversation." : "That message is no longer there.");
    });
  }
}
