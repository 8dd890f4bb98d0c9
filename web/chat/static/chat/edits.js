// Edits and deletes on the room page: your own messages are edited in place and deleted
// after a confirmation; a moderator (the join ack's "moderator") edits anyone's (deleting
// others' is moderation.js's). Each change is a room event (`edit`, `delete`) that every
// page applies in seq order: an edited message's element gets class "edited", a deleted
// one class "deleted" and loses its text and nick.
//
// Hooks: the page calls joined(ack) after each join and apply(event) for each `edit` /
// `delete` (live, or in a resumed join's history); conversation.js marks messages that come
// already changed (its markEdited, markDeleted). A change of a message not shown (never loaded,
// or on a history page still on its way) is kept and applied if the message shows up, so
// neither a missing target breaks the page nor does a page that raced it bring the old text back.

import { element, markDeleted, markEdited } from "./conversation.js";

const ACTION_TIMEOUT_MS = 8000;
const PENDING_MAX = 500;   // changes of messages not shown, kept for a history page in flight

function button(className, text, title) {
  const node = element("button", className, text);
  node.type = "button";
  if (title) node.title = title;
  return node;
}

export class Edits {
  /**
   * @param socket the page's socket.io connection.
   * @param room this page's room.
   * @param conversation the page's Conversation (its bySeq map of shown messages).
   * @param notify (text, kind) -> shows a notice in the conversation.
   */
  constructor(socket, room, conversation, notify) {
    this.socket = socket;
    this.room = room;
    this.conversation = conversation;
    this.notify = notify;
    this.uid = null;
    this.moderator = false;
    this.pending = new Map();   // target seq -> the latest change of it not yet applied
    new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node.matches?.("li.message")) this.shown(node);
        }
      }
    }).observe(conversation.list, { childList: true });
  }

  /** After a join: who this connection is and whether it moderates the room. */
  joined(ack) {
    this.uid = ack.uid;
    this.moderator = Boolean(ack.moderator);
    for (const item of this.conversation.bySeq.values()) this.decorate(item);
  }

  /** An `edit` or `delete` event, in seq order. */
  apply(event) {
    const item = this.conversation.bySeq.get(event.target);
    if (!item) {
      const earlier = this.pending.get(event.target);
      if (!earlier || earlier.kind !== "delete") this.pending.set(event.target, event);
      if (this.pending.size > PENDING_MAX) this.pending.delete(this.pending.keys().next().value);
      return;
    }
    this.change(item, event);
  }

  change(item, event) {
    if (item.classList.contains("deleted")) return;   // a delete is final
    if (event.kind === "delete") {
      markDeleted(item);
      return;
    }
    if (event.text === undefined) return;   // an edit whose text went with a later delete
    const text = item.querySelector(".text");
    text.textContent = event.text;
    markEdited(item, event.ts);
  }

  /** A message element appeared (live, a join's history, a history page). */
  shown(item) {
    const seq = Number(item.dataset.seq);
    const change = this.pending.get(seq);
    if (change) {
      this.pending.delete(seq);
      this.change(item, change);
    }
    this.decorate(item);
  }

  /** Your own messages: Edit and Delete; a moderator's view of others': Edit. */
  decorate(item) {
    item.querySelector(".edit-actions")?.remove();
    if (this.uid === null || item.classList.contains("deleted")) return;
    const own = item.dataset.uid === this.uid;
    if (!own && !this.moderator) return;
    const seq = Number(item.dataset.seq);
    const actions = element("span", "edit-actions");
    const edit = button("edit", "Edit", own ? "Edit your message" : "Edit this message (moderator)");
    edit.addEventListener("click", () => this.editForm(item, seq));
    actions.append(edit);
    if (own) {
      const remove = button("delete", "Delete", "Delete your message for everyone");
      remove.addEventListener("click", () => this.confirmDelete(item, seq));
      actions.append(remove);
    }
    item.querySelector(".meta").append(" ", actions);
  }

  /** The message's text becomes a box to edit it in place: Enter saves, Escape cancels. */
  editForm(item, seq) {
    item.querySelector("form")?.remove();
    const text = item.querySelector(".text");
    const form = element("form", "edit-form");
    const box = element("textarea", "edit-text");
    box.value = text.textContent;
    box.maxLength = 2000;
    box.dir = "auto";
    box.rows = Math.min(8, box.value.split("\n").length + 1);
    box.setAttribute("aria-label", "New text of the message");
    const cancel = button("cancel-edit", "Cancel");
    form.append(box, element("button", "save-edit", "Save"), " ", cancel);
    const close = () => {
      form.remove();
      text.hidden = false;
    };
    cancel.addEventListener("click", close);
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close();
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!box.value.trim() || box.value === text.textContent) {
        close();
        return;
      }
      this.act("edit", { room: this.room, seq, text: box.value }, close);
    });
    text.hidden = true;
    text.after(form);
    box.focus();
  }

  confirmDelete(item, seq) {
    item.querySelector("form")?.remove();
    const form = element("form", "delete-confirm");
    const cancel = button("cancel-delete", "Cancel");
    form.append("Delete this message for everyone? ",
      element("button", "confirm-delete", "Delete"), " ", cancel);
    cancel.addEventListener("click", () => form.remove());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.act("delete", { room: this.room, seq }, () => form.remove());
    });
    item.append(form);
    form.querySelector(".confirm-delete").focus();
  }

  /** Send the change; the page shows it when its event comes back (every page alike). */
  act(event, payload, done) {
    this.socket.timeout(ACTION_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (err) {
        this.notify("No answer from the server; try again.", "warning");
      } else if (ack.ok) {
        done();
      } else {
        done();
        this.notify(ack.detail || ack.error, "warning");
      }
    });
  }
}
