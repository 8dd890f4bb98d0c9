// The lobby: the remembered nickname, the cluster's active rooms with their member
// counts and, logged in, the unread messages in each (the `rooms` request, asked again
// every few seconds), and a form to enter a room.

import { nickProblem, rememberedNick, rememberNick, roomProblem, setFieldError } from "./names.js";
import { startPeople } from "./people.js";
import { unreadBadge } from "./reading.js";

const ROOMS_REFRESH_MS = 3000;   // a lobby a few seconds behind is fresh enough, and cheap
const ROOMS_TIMEOUT_MS = 5000;
const REFUSED_RETRY_MS = 3000;   // a node refused the connection (full): ask again, maybe elsewhere

const $ = (id) => document.getElementById(id);
const nickInput = $("nick");
const roomInput = $("room");
// Logged in, the nickname is the account's username (read-only here); a guest's is remembered.
const account = JSON.parse($("account-data").textContent);

function remember(nick) {
  if (!account && !nickProblem(nick)) rememberNick(nick);
}

function roomUrl(room) {
  return "/r/" + encodeURIComponent(room) + "/";
}

// the form

function checkNick() {
  const problem = nickProblem(nickInput.value.trim());
  setFieldError(nickInput, $("nick-error"), problem);
  return !problem;
}

function checkRoom() {
  const problem = roomProblem(roomInput.value.trim());
  setFieldError(roomInput, $("room-error"), problem);
  return !problem;
}

if (!account) nickInput.value = rememberedNick();
(nickInput.value ? roomInput : nickInput).focus();

$("enter").addEventListener("submit", (e) => {
  e.preventDefault();
  const nickOk = checkNick();
  const roomOk = checkRoom();
  if (!nickOk) nickInput.focus();
  else if (!roomOk) roomInput.focus();
  if (!nickOk || !roomOk) return;
  remember(nickInput.value.trim());
  location.href = roomUrl(roomInput.value.trim());
});
// once an error is shown, say as soon as it is fixed
nickInput.addEventListener("input", () => { if (!$("nick-error").hidden) checkNick(); });
roomInput.addEventListener("input", () => { if (!$("room-error").hidden) checkRoom(); });
nickInput.addEventListener("change", () => remember(nickInput.value.trim()));

// the active rooms

let shown = null;   // the last list rendered, as JSON, to skip identical redraws

function renderRooms(rooms) {
  const json = JSON.stringify(rooms);
  if (json === shown) return;
  shown = json;
  const list = $("rooms");
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.room : null;
  list.textContent = "";
  for (const { room, members, unread } of rooms) {
    const link = document.createElement("a");
    link.href = roomUrl(room);
    link.dataset.room = room;
    const name = document.createElement("span");
    name.className = "room-name";
    name.textContent = "#" + room;
    const count = document.createElement("span");
    count.className = "count";
    count.dataset.members = String(members);
    count.textContent = members + (members === 1 ? " person" : " people");
    link.append(name, unreadBadge(unread), count);
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
    if (room === focused) link.focus();
  }
  $("rooms-empty").hidden = rooms.length > 0;
}

function setRoomsState(text, live) {
  const state = $("rooms-state");
  if (state.textContent !== text) state.textContent = text;
  state.classList.toggle("live", live);
}

const socket = io({ reconnectionDelay: 1000, reconnectionDelayMax: 5000 });

function refreshRooms() {
  if (!socket.connected || document.hidden) return;
  socket.timeout(ROOMS_TIMEOUT_MS).emit("rooms", {}, (err, ack) => {
    if (err || !ack.ok) {
      setRoomsState("could not load the rooms; retrying…", false);
      return;
    }
    renderRooms(ack.rooms);
    setRoomsState("live", true);
  });
}

socket.on("connect", refreshRooms);
socket.on("disconnect", () => setRoomsState("reconnecting…", false));
socket.on("connect_error", (err) => {
  setRoomsState("cannot reach the server; retrying…", false);
  if (!socket.active) {   // refused by the server itself: socket.io leaves the retry to us
    setTimeout(() => { if (!socket.connected) socket.connect(); }, REFUSED_RETRY_MS);
  }
});
setInterval(refreshRooms, ROOMS_REFRESH_MS);
if (account) startPeople(socket);   // direct conversations and private rooms
document.addEventListener("visibilitychange", refreshRooms);
// following a room link carries the nickname typed so far
$("rooms").addEventListener("click", () => remember(nickInput.value.trim()));
