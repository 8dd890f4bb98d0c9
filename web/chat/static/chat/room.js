// The chat page of one room: joins with the remembered nickname, shows history and live
// messages in seq order, keeps the member list, and resumes after a lost connection with
// since + epoch (de-duplicating by seq; on a gap it reloads the history and says so).
//
// The connection is a small state machine:
//   idle ──join──▶ connecting ──connect──▶ joining ──ack ok──▶ live
//                      │                     ▲   │                │
//                      └──── error ────▶ reconnecting ◀──drop─────┘
// A refused nickname goes back to idle. #status shows "connected" only while live.
//
// Logged in, the page joins at once as the account's username (the server binds it).
// "My own" messages are those whose uid is the one the join ack gave: never by nick,
// since guests with the same nick are different people.

import { Conversation } from "./conversation.js";
import { Edits } from "./edits.js";
import { Moderation, banText } from "./moderation.js";
import { Outbox } from "./outbox.js";
import { ReadMarker } from "./reading.js";
import { ScrollBack } from "./scrollback.js";
import { SearchBox } from "./search.js";
import { TypingIndicator } from "./typing.js";
import { nickHue, nickProblem, rememberedNick, rememberNick, setFieldError } from "./names.js";

const JOIN_TIMEOUT_MS = 10000;   // no answer by then: the join is sent again
const JOIN_RETRY_MS = 1000;      // after "unavailable" (the node is still syncing with the broker)
const SEND_TIMEOUT_MS = 12000;   // the node answers "unavailable" after 5 s; later means lost
const MEMBERS_TIMEOUT_MS = 5000;
const REFUSED_RETRY_MS = 3000;   // a node refused the connection (full): ask again, maybe elsewhere
const HISTORY_TIMEOUT_MS = 8000;
const FOUND_MS = 2500;           // how long a message jumped to stays highlighted

const State = {
  IDLE: "idle", CONNECTING: "connecting", JOINING: "joining", LIVE: "live",
  RECONNECTING: "reconnecting",
};

const $ = (id) => document.getElementById(id);
const room = JSON.parse($("room-data").textContent);
const account = JSON.parse($("account-data").textContent);   // username, or null for a guest

class RoomPage {
  constructor() {
    this.state = State.IDLE;
    this.wasLive = false;      // been in the room before: a new join is a resume
    this.nick = null;          // the nickname the server accepted
    this.uid = null;           // who the server says this connection is (join ack)
    this.wantedNick = null;    // the nickname the next join asks for
    this.epoch = null;
    this.lastSeq = 0;
    this.joinAttempt = 0;
    this.joinBuffer = null;    // live messages that arrive while a join is answered
    this.presenceVersion = 0;
    this.unread = 0;
    this.baseTitle = document.title;
    this.bannerText = $("banner").textContent;

    this.conversation = new Conversation($("messages"), $("jump"), (m) => this.isOwn(m));
    this.outbox = new Outbox($("outbox"), {
      retry: (item) => this.send(item),
      edit: (text) => this.editText(text),
    });
    this.socket = io({
      autoConnect: false,
      reconnectionDelay: 500,      // a node restart should cost people about a second
      reconnectionDelayMax: 4000,
    });
    this.scrollBack = new ScrollBack($("messages"), this.conversation, (payload) =>
      (this.state === State.LIVE
        ? this.socket.timeout(HISTORY_TIMEOUT_MS).emitWithAck("history", payload) : null), room);
    this.moderation = new Moderation(this.socket, room, $("messages"), $("members"),
      (text, kind) => this.conversation.addNotice(text, kind));
    this.edits = new Edits(this.socket, room, this.conversation,
      (text, kind) => this.conversation.addNotice(text, kind));
    this.search = new SearchBox(this.socket, room, (seq) => this.jumpTo(seq));
    const live = () => this.state === State.LIVE;
    this.typing = new TypingIndicator($("typing"), this.socket, room, live);
    this.reading = new ReadMarker($("messages"), this.socket, room, live);
    this.jumpAfterJoin = /^#seq=\d+$/.test(location.hash) ? Number(location.hash.slice(5)) : null;
    this.setState(State.IDLE);
    this.bindSocket();
    this.bindForms();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.setUnread(0);
    });

    const nick = account || rememberedNick();
    $("nick").value = nick;
    if (nick && !nickProblem(nick)) this.join(nick);
    else $("nick").focus();
  }

  // state

  setState(state) {
    this.state = state;
    const status = state === State.LIVE ? "connected"
      : state === State.RECONNECTING || (this.wasLive && state !== State.IDLE) ? "reconnecting"
      : "disconnected";
    $("status").textContent = status;
    $("status").dataset.state = status;
    document.body.dataset.state = state;
    $("banner").hidden = status !== "reconnecting";
    if (state === State.LIVE) $("banner").textContent = this.bannerText;
    $("members-panel").classList.toggle("stale", state !== State.LIVE);
    const text = $("text");
    text.disabled = state === State.IDLE;
    text.placeholder = state === State.IDLE ? "Choose a nickname first"
      : "Message #" + room;
    $("join").textContent = this.nick && state !== State.IDLE ? "Change" : "Join";
  }

  /** Show message ``seq``, loading older pages until it is there; resolves whether it is. */
  jumpTo(seq) {
    return this.scrollBack.reach(seq).then((item) => {
      if (!item) return false;
      item.scrollIntoView({ block: "center" });
      item.classList.add("found");
      setTimeout(() => item.classList.remove("found"), FOUND_MS);
      return true;
    });
  }

  isOwn(m) {
    return this.uid !== null && m.uid === this.uid;
  }

  // joining and resuming

  join(nick) {
    this.wantedNick = nick;
    if (this.state === State.LIVE) {
      this.sendJoin({ rename: true });
    } else if (this.state === State.IDLE) {
      this.setState(State.CONNECTING);
      if (this.socket.connected) this.sendJoin();
      else this.socket.connect();
    }
    // connecting / joining / reconnecting: the next join uses wantedNick
  }

  sendJoin({ rename = false } = {}) {
    const req = { room, nick: this.wantedNick };
    if (this.epoch !== null) {
      req.since = this.lastSeq;
      req.epoch = this.epoch;
    }
    if (!rename) {
      this.setState(State.JOINING);
      this.joinBuffer = [];
    }
    const attempt = ++this.joinAttempt;
    this.socket.timeout(JOIN_TIMEOUT_MS).emit("join", req, (err, ack) => {
      if (attempt !== this.joinAttempt || !this.socket.connected) return;
      if (err || !ack.ok) this.joinRefused(err ? { error: "timeout" } : ack, rename);
      else this.joined(ack, rename);
    });
  }

  joinRefused(ack, rename) {
    if (ack.error === "invalid_nick" || ack.error === "nick_taken" || ack.error === "invalid_payload") {
      setFieldError($("nick"), $("nick-error"), ack.detail || "That nickname is not allowed.");
      $("nick").focus();
      if (rename) {
        this.wantedNick = this.nick;   // stay in the room under the accepted nickname
      } else {
        this.joinBuffer = null;
        this.setState(State.IDLE);
      }
      return;
    }
    if (ack.error === "banned") {
      this.shutOut(banText(room, ack.until));
      return;
    }
    if (ack.error === "forbidden") {   // a private room or direct conversation of others
      this.shutOut(ack.detail || "This room is private.");
      return;
    }
    // unavailable (node still syncing), timeout, internal: ask again shortly
    setTimeout(() => {
      if (this.socket.connected && (this.state === State.JOINING || rename)) this.sendJoin({ rename });
    }, JOIN_RETRY_MS);
  }

  /** Out of the room for good (not a member, removed): say why, stop reconnecting. */
  shutOut(why) {
    this.joinBuffer = null;
    this.setState(State.IDLE);
    this.socket.disconnect();
    this.conversation.addNotice(why, "warning");
  }

  joined(ack, rename) {
    const resumed = this.wasLive && !rename;
    const gap = ack.gap || (this.epoch !== null && ack.epoch !== this.epoch);
    const buffered = this.joinBuffer || [];   // [kind, event] in arrival order
    this.joinBuffer = null;
    const live = buffered.filter(([kind]) => kind === "message").map(([, m]) => m);
    this.nick = ack.nick;
    this.uid = ack.uid;
    this.moderation.joined(ack);
    this.edits.joined(ack);
    setFieldError($("nick"), $("nick-error"), "");
    if (gap) {
      this.conversation.reset();
      this.lastSeq = 0;
    }
    this.epoch = ack.epoch;
    const before = this.conversation.bySeq.size;
    // after since: the edits and deletes missed, in seq order with the messages
    const isChange = (m) => m.kind === "edit" || m.kind === "delete";
    this.conversation.addMessages(ack.history.filter((m) => !isChange(m)));
    for (const change of ack.history.filter(isChange)) this.edits.apply(change);
    for (const [kind, event] of buffered) {
      if (kind === "message") this.conversation.addMessage(event, { quiet: true });
      else if (kind === "change") this.edits.apply(event);
      else this.conversation.addAnnouncement(event);
    }
    for (const m of ack.history.concat(live)) this.outbox.delivered(m.cid);
    if (gap) this.outbox.forgetSequenced();
    const caughtUp = this.conversation.bySeq.size - before;
    this.lastSeq = Math.max(this.lastSeq, ack.seq,
      ...buffered.filter(([kind]) => kind !== "announcement").map(([, e]) => e.seq));

    $("node").textContent = ack.node || "?";
    const firstJoin = !this.wasLive;
    this.wasLive = true;
    this.setState(State.LIVE);
    if (gap && resumed) {
      this.conversation.addNotice("Some messages were missed while you were away, so the "
        + "conversation was reloaded from the server's history.", "warning");
    } else if (resumed) {
      this.conversation.addNotice("Reconnected via " + ack.node
        + (caughtUp ? "; " + caughtUp + " missed message" + (caughtUp === 1 ? "" : "s")
          + " shown above." : "."));
    }
    if (!this.reading.joined(ack, firstJoin)) this.conversation.scrollToEnd();
    this.scrollBack.joined(ack, gap);
    if (this.jumpAfterJoin !== null) {   // opened from another room's search hit
      this.jumpTo(this.jumpAfterJoin);
      this.jumpAfterJoin = null;
    }
    this.refreshMembers();
    for (const item of this.outbox.unsent()) this.send(item);
    if (this.wantedNick !== this.nick && !rename) this.sendJoin({ rename: true });
    if (firstJoin && (document.activeElement === document.body || document.activeElement === $("join")
      || document.activeElement === $("nick"))) $("text").focus();
  }

  // socket events

  bindSocket() {
    const s = this.socket;
    s.on("connect", () => {
      if (this.state === State.CONNECTING || this.state === State.RECONNECTING) this.sendJoin();
    });
    s.on("connect_error", (err) => {
      if (this.state === State.IDLE) return;
      if (this.state === State.CONNECTING) this.setState(State.RECONNECTING);
      if (!s.active) {   // refused by the server itself: socket.io leaves the retry to us
        const detail = (err.data && err.data.detail) || err.message;
        $("banner").textContent = "The server refused the connection (" + detail
          + "). Trying again…";
        setTimeout(() => {
          if (!s.connected && this.state !== State.IDLE) s.connect();
        }, REFUSED_RETRY_MS);
      }
    });
    s.on("disconnect", (reason) => {
      if (this.state === State.IDLE) return;
      this.joinAttempt += 1;          // answers to the old connection's join never come
      this.joinBuffer = null;
      this.outbox.waitAll();
      const wasLive = this.state === State.LIVE;
      this.setState(State.RECONNECTING);
      if (wasLive) this.conversation.addNotice("Connection lost; reconnecting…", "warning");
      // The server closed us on purpose (e.g. its copy of the room broke): it expects us
      // back with since + epoch, but socket.io does not reconnect by itself in this case.
      if (reason === "io server disconnect") s.connect();
    });
    s.on("message", (m) => this.onMessage(m));
    for (const name of ["edit", "delete"]) s.on(name, (e) => this.onChange(e));
    s.on("banned", (e) => {
      if (e.room === room) this.shutOut(banText(room, e.until));
    });
    s.on("evicted", (e) => {
      if (e.room === room) this.shutOut("You were removed from this room.");
    });
    s.on("announcement", (a) => {
      if (a.room !== room) return;
      if (this.joinBuffer) this.joinBuffer.push(["announcement", a]);
      else if (this.state === State.LIVE) this.conversation.addAnnouncement(a);
    });
    s.on("presence", (p) => {
      if (p.room !== room) return;
      this.presenceVersion += 1;
      this.showMembers(p.members);
    });
  }

  onMessage(m) {
    if (m.room !== room) return;
    if (this.joinBuffer) {
      this.joinBuffer.push(["message", m]);
      return;
    }
    if (this.state !== State.LIVE) return;
    this.typing.stopped(m.uid);
    if (this.conversation.addMessage(m)) {
      this.lastSeq = Math.max(this.lastSeq, m.seq);
      if (document.hidden) this.setUnread(this.unread + 1);
    }
    this.outbox.delivered(m.cid);
    this.outbox.deliveredSeq(m.seq);
  }

  /** An edit or delete (edits.js), in seq order with the messages. */
  onChange(e) {
    if (e.room !== room) return;
    if (this.joinBuffer) {
      this.joinBuffer.push(["change", e]);
      return;
    }
    if (this.state !== State.LIVE) return;
    this.edits.apply(e);
    this.lastSeq = Math.max(this.lastSeq, e.seq);
  }

  setUnread(n) {
    this.unread = n;
    document.title = (n ? "(" + n + ") " : "") + this.baseTitle;
  }

  // members

  refreshMembers() {
    const version = this.presenceVersion;
    this.socket.timeout(MEMBERS_TIMEOUT_MS).emit("members", { room }, (err, ack) => {
      // a presence event that came meanwhile is newer than this answer
      if (!err && ack.ok && version === this.presenceVersion) this.showMembers(ack.members);
    });
  }

  showMembers(members) {
    const list = $("members");
    list.textContent = "";
    for (const nick of members) {
      const item = document.createElement("li");
      item.textContent = nick;
      item.dir = "auto";
      item.dataset.initial = Array.from(nick)[0].toUpperCase();
      item.style.setProperty("--hue", String(nickHue(nick)));
      if (nick === this.nick) {
        item.className = "me";
        item.title = "you";
      }
      list.append(item);
    }
    $("member-count").textContent = String(members.length);
  }

  // sending

  send(item) {
    if (this.state !== State.LIVE) {
      this.outbox.waiting(item);
      return;
    }
    const attempt = this.outbox.nextAttempt(item);
    this.outbox.sending(item);
    const payload = { room, text: item.text, cid: item.cid };
    this.socket.timeout(SEND_TIMEOUT_MS).emit("message", payload, (err, ack) => {
      if (attempt !== item.attempt || this.outbox.get(item.cid) !== item) return;
      if (err) {
        this.outbox.failed(item, "timeout", "no answer from the server");
      } else if (ack.ok) {
        if (this.conversation.has(ack.seq)) this.outbox.delivered(item.cid);
        else this.outbox.sequenced(item, ack.seq);
      } else if (ack.error === "not_joined" && this.state === State.LIVE) {
        this.outbox.waiting(item);   // the server forgot us: rejoin, then it goes out again
        this.sendJoin();
      } else {
        this.outbox.failed(item, ack.error, ack.detail);
      }
    });
  }

  editText(text) {
    const box = $("text");
    if (text !== null && !box.value) box.value = text;
    box.dispatchEvent(new Event("input"));
    box.focus();
  }

  // forms

  bindForms() {
    $("joinform").addEventListener("submit", (e) => {
      e.preventDefault();
      const nick = $("nick").value.trim();
      const problem = nickProblem(nick);
      setFieldError($("nick"), $("nick-error"), problem);
      if (problem) {
        $("nick").focus();
        return;
      }
      if (!account) rememberNick(nick);
      if (nick === this.nick && this.state !== State.IDLE) $("text").focus();
      else this.join(nick);
    });

    const text = $("text");
    $("sendform").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitText();
    });
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submitText();
      }
    });
    text.addEventListener("input", (e) => {
      this.fitComposer();
      if (e.isTrusted && text.value) this.typing.keyPressed();
    });
  }

  submitText() {
    const box = $("text");
    if (this.state === State.IDLE) {
      $("nick").focus();
      return;
    }
    if (!box.value.trim()) return;
    const item = this.outbox.add(box.value);
    this.typing.sent();
    box.value = "";
    this.fitComposer();
    this.send(item);
    box.focus();
  }

  /** Grow the message box with its text (up to the CSS max-height), and count characters. */
  fitComposer() {
    const box = $("text");
    box.style.height = "auto";
    box.style.height = box.scrollHeight + "px";
    const counter = $("counter");
    const n = box.value.length;
    counter.hidden = n < 1800;
    counter.textContent = n + " / 2000";
    counter.classList.toggle("over", n > 2000);
  }
}

new RoomPage();
