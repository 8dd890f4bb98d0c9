// Moderation on the room page: everyone may report someone else's message (with a reason);
// moderators (the join ack's "moderator") also delete any message and ban a member from the
// member list. Each action opens a small form in place (no browser dialogs) and says how it went.
//
// Hooks: the page calls joined(ack) after each join; messages (#messages li[data-seq], with
// data-uid) and members (#members li) are decorated as they appear. Whose uid a member has is
// learnt from the messages shown: a member who has written nothing here cannot be banned from
// the list (ban them from a message of theirs once they write, or in the admin).

const ACTION_TIMEOUT_MS = 8000;
const REASON_MAX = 500;   // CHAT_REPORT_REASON_MAX's default; the server has the last word
const BAN_CHOICES = [["10", "10 minutes"], ["60", "1 hour"], ["1440", "1 day"], ["", "for good"]];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(className, text, title) {
  const node = element("button", className, text);
  node.type = "button";
  if (title) node.title = title;
  return node;
}

export class Moderation {
  /**
   * @param socket the page's socket.io connection.
   * @param room this page's room.
   * @param list the #messages element; @param members the #members element.
   * @param notify (text, kind) -> shows a notice in the conversation.
   */
  constructor(socket, room, list, members, notify) {
    this.socket = socket;
    this.room = room;
    this.list = list;
    this.members = members;
    this.notify = notify;
    this.uid = null;
    this.moderator = false;
    this.uids = new Map();   // nick -> the uid of the latest message shown under it
    // new messages, and messages that become tombstones (class "deleted", from edits.js)
    new MutationObserver(() => this.decorateMessages()).observe(list, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["class"] });
    new MutationObserver(() => this.decorateMembers()).observe(members, { childList: true });
  }

  /** After a join: who this connection is and whether it moderates the room. */
  joined(ack) {
    this.uid = ack.uid;
    this.moderator = Boolean(ack.moderator);
    for (const item of this.list.querySelectorAll("li.message")) delete item.dataset.moderation;
    this.decorateMessages();
    this.decorateMembers();
  }

  decorateMessages() {
    for (const item of this.list.querySelectorAll("li.message[data-uid]")) {
      const uid = item.dataset.uid;
      const nick = item.querySelector(".nick");
      if (nick) this.uids.set(nick.textContent, uid);   // in seq order: the latest stays
      if (item.classList.contains("deleted")) {
        item.querySelector(".mod-actions")?.remove();
        continue;
      }
      if (item.dataset.moderation === String(this.moderator) || this.uid === null) continue;
      item.dataset.moderation = String(this.moderator);
      item.querySelector(".mod-actions")?.remove();
      if (uid === this.uid) continue;
      const actions = element("span", "mod-actions");
      const seq = Number(item.dataset.seq);
      const report = button("report", "Report", "Report this message to the staff");
      report.addEventListener("click", () => this.reportForm(item, seq));
      actions.append(report);
      if (this.moderator) {
        const remove = button("mod-delete", "Delete", "Delete this message for everyone");
        remove.addEventListener("click", () => this.act("delete", { room: this.room, seq },
          "Message deleted."));
        const ban = button("ban", "Ban", "Ban its author from this room");
        ban.addEventListener("click", () => this.banForm(item, uid, nick ? nick.textContent : "them"));
        actions.append(remove, ban);
      }
      item.querySelector(".meta").append(" ", actions);
    }
    this.decorateMembers();   // a member's first message makes them bannable from the list
  }

  decorateMembers() {
    for (const item of this.members.querySelectorAll("li")) {
      if (!this.moderator || item.querySelector(".ban") || item.classList.contains("me")) continue;
      const nick = item.textContent;
      const uid = this.uids.get(nick);
      if (!uid || uid === this.uid) continue;
      const ban = button("ban", "Ban", "Ban " + nick + " from this room");
      ban.addEventListener("click", () => this.banForm(item, uid, nick));
      item.append(" ", ban);
    }
  }

  /** A one-line form under ``anchor``; ``fill(form)`` adds its fields, ``submit`` sends it. */
  openForm(anchor, className, fill, submit) {
    anchor.parentElement.querySelector("form.mod-form")?.remove();
    const form = element("form", "mod-form " + className);
    fill(form);
    const cancel = button("cancel", "Cancel");
    cancel.addEventListener("click", () => form.remove());
    form.append(cancel);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      submit(form);
      form.remove();
    });
    anchor.after(form);
    form.querySelector("input, select")?.focus();
  }

  reportForm(item, seq) {
    this.openForm(item, "report-form", (form) => {
      const reason = element("input", "reason");
      reason.maxLength = REASON_MAX;
      reason.required = true;
      reason.placeholder = "What is wrong with it?";
      reason.setAttribute("aria-label", "Reason for the report");
      form.append(reason, element("button", "send-report", "Report"));
    }, (form) => this.act("report", { room: this.room, seq, reason: form.querySelector(".reason").value },
      "Reported; the staff will look at it."));
  }

  banForm(anchor, uid, nick) {
    this.openForm(anchor, "ban-form", (form) => {
      const how = element("select", "ban-minutes");
      how.setAttribute("aria-label", "How long to ban " + nick);
      for (const [value, label] of BAN_CHOICES) {
        const option = element("option", "", label);
        option.value = value;
        how.append(option);
      }
      form.append("Ban ", element("bdi", "", nick), " ", how, " ",
        element("button", "send-ban", "Ban"));
    }, (form) => {
      const minutes = form.querySelector(".ban-minutes").value;
      const payload = { room: this.room, uid };
      if (minutes) payload.minutes = Number(minutes);
      this.act("ban", payload, nick + " is banned from this room.");
    });
  }

  act(event, payload, done) {
    this.socket.timeout(ACTION_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (err) this.notify("No answer from the server; try again.", "warning");
      else if (ack.ok) this.notify(done);
      else this.notify(ack.detail || ack.error, "warning");
    });
  }
}

/** How a ban is told to the banned: when it ends, in this browser's time. */
export function banText(room, until) {
  if (until === null || until === undefined) return "You are banned from #" + room + ".";
  return "You are banned from #" + room + " until " + new Date(until).toLocaleString() + ".";
}
