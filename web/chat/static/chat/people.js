// The lobby's direct conversations and private rooms, for accounts: the account's own
// list (`private_rooms`), a form that starts a direct conversation by username (`dm`) and
// one that creates a private room with its members (`create`); each opens the room's page.

import { roomProblem, setFieldError } from "./names.js";
import { unreadBadge } from "./reading.js";

const REQUEST_TIMEOUT_MS = 5000;
const LIST_REFRESH_MS = 10000;   // a new conversation shows within seconds; one query each

const $ = (id) => document.getElementById(id);

function roomUrl(room) {
  return "/r/" + encodeURIComponent(room) + "/";
}

function render(rooms) {
  const list = $("private-rooms");
  list.textContent = "";
  for (const { room, direct, with: other, members, unread } of rooms) {
    const link = document.createElement("a");
    link.href = roomUrl(room);
    link.dataset.room = room;
    link.dataset.direct = String(direct);
    const name = document.createElement("span");
    name.className = "room-name";
    name.textContent = direct ? "@" + other : "#" + room;   // text, never HTML
    const about = document.createElement("span");
    about.className = "count";
    about.textContent = direct ? "direct" : "private · " + members.length
      + (members.length === 1 ? " member" : " members");
    link.append(name, unreadBadge(unread), about);
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
  }
  $("private-rooms-empty").hidden = rooms.length > 0;
}

export function startPeople(socket) {
  const input = $("dm-to");
  const error = $("dm-error");
  const button = $("dm-start");

  function load() {
    socket.timeout(REQUEST_TIMEOUT_MS).emit("private_rooms", {}, (err, ack) => {
      if (!err && ack.ok) render(ack.rooms);
    });
  }
  socket.on("connect", load);
  if (socket.connected) load();
  // someone may start a conversation with you while the lobby is open
  setInterval(() => { if (socket.connected && !document.hidden) load(); }, LIST_REFRESH_MS);

  $("dm-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const to = input.value.trim();
    if (!to) {
      setFieldError(input, error, "Type the username of the person to talk with.");
      input.focus();
      return;
    }
    button.disabled = true;
    socket.timeout(REQUEST_TIMEOUT_MS).emit("dm", { to }, (err, ack) => {
      button.disabled = false;
      if (err || !ack.ok) {
        setFieldError(input, error, err ? "The server did not answer; try again." : ack.detail);
        input.focus();
        return;
      }
      location.href = roomUrl(ack.room);
    });
  });
  input.addEventListener("input", () => { if (!error.hidden) setFieldError(input, error, ""); });
  createForm(socket);
}

function createForm(socket) {
  const name = $("private-name");
  const error = $("private-error");
  const button = $("private-create");
  $("private-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const room = name.value.trim();
    const problem = roomProblem(room);
    if (problem) {
      setFieldError(name, error, problem);
      name.focus();
      return;
    }
    const members = $("private-members").value.split(",").map((m) => m.trim()).filter(Boolean);
    button.disabled = true;
    socket.timeout(REQUEST_TIMEOUT_MS).emit("create", { room, private: true, members }, (err, ack) => {
      button.disabled = false;
      if (err || !ack.ok) {
        setFieldError(name, error, err ? "The server did not answer; try again." : ack.detail);
        name.focus();
        return;
      }
      location.href = roomUrl(room);
    });
  });
}
