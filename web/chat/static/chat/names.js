// Room names and nicknames: the contract's rules (PROTOCOL.md "Errors") and the
// remembered nickname. The server checks again; these only give early, friendly feedback.

const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const NICK_MAX = 32;
const CONTROL_RE = /[\x00-\x1f\x7f-\x9f]/;
const NICK_KEY = "chat.nick";

/** Why `room` is not a valid room name, or "" when it is. */
export function roomProblem(room) {
  if (!room) return "Enter a room name.";
  if (room.length > 64) return "Room names are at most 64 characters.";
  if (!ROOM_RE.test(room)) return "Use only letters A-Z a-z, digits, _ and - (no spaces).";
  return "";
}

/** Why `nick` (already trimmed) is not a valid nickname, or "" when it is. */
export function nickProblem(nick) {
  if (!nick) return "Choose a nickname.";
  if (nick.length > NICK_MAX) return "Nicknames are at most " + NICK_MAX + " characters.";
  if (CONTROL_RE.test(nick)) return "Nicknames cannot contain control characters.";
  return "";
}

export function rememberedNick() {
  try {
    return localStorage.getItem(NICK_KEY) || "";
  } catch (e) {   // storage disabled: the page still works, it just forgets
    return "";
  }
}

export function rememberNick(nick) {
  try {
    localStorage.setItem(NICK_KEY, nick);
  } catch (e) { /* see rememberedNick */ }
}

/** A stable hue for a nickname, so each person keeps one colour everywhere. */
export function nickHue(nick) {
  let h = 0;
  for (const ch of nick) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

/** Show or clear a field's error: text in the error element and aria-invalid on the field. */
export function setFieldError(input, errorEl, message) {
  errorEl.textContent = message;
  errorEl.hidden = !message;
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}
