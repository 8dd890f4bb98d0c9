// Minimal room page: join, history, live messages by seq, resume with since + epoch.
(function () {
  "use strict";
  var room = JSON.parse(document.getElementById("room-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var seen = {}, lastSeq = null, epoch = null, joinedNick = null;
  $("nick").value = localStorage.getItem("chat.nick") || "";

  function setStatus(s) { $("status").textContent = s; }
  function showError(ack) { $("error").textContent = ack.error + ": " + ack.detail; }

  function addMessage(m) {
    if (seen[m.seq]) return;
    seen[m.seq] = true;
    var li = document.createElement("li");
    li.dataset.seq = String(m.seq);
    var nick = document.createElement("span");
    nick.className = "nick";
    nick.textContent = m.nick;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    li.append(nick, text);
    var list = $("messages"), after = null;
    for (var i = list.children.length - 1; i >= 0; i--) {
      var s = list.children[i].dataset.seq;
      if (s && Number(s) < m.seq) { after = list.children[i]; break; }
    }
    if (after) after.after(li); else list.prepend(li);
    lastSeq = Math.max(lastSeq || 0, m.seq);
  }

  function addAnnouncement(a) {
    var li = document.createElement("li");
    li.className = "announcement";
    li.textContent = a.text;
    $("messages").append(li);
  }

  var socket = io({ autoConnect: false });
  socket.on("connect", function () {
    setStatus("connected");
    if (joinedNick) join(joinedNick);
  });
  socket.on("disconnect", function () { setStatus("reconnecting"); });
  socket.io.on("reconnect_failed", function () { setStatus("disconnected"); });
  socket.on("message", function (m) { if (m.room === room) addMessage(m); });
  socket.on("announcement", function (a) { if (a.room === room) addAnnouncement(a); });

  function join(nick) {
    var req = { room: room, nick: nick };
    if (lastSeq !== null && epoch) { req.since = lastSeq; req.epoch = epoch; }
    socket.emit("join", req, function (ack) {
      if (!ack.ok) { showError(ack); return; }
      joinedNick = ack.nick;
      if (ack.gap || (epoch !== null && ack.epoch !== epoch)) {
        seen = {}; lastSeq = null; $("messages").textContent = "";
      }
      if (ack.gap) addAnnouncement({ text: "Some messages were missed; history reloaded." });
      epoch = ack.epoch;
      ack.history.forEach(addMessage);
      if (lastSeq === null) lastSeq = ack.seq;
    });
  }

  $("joinform").addEventListener("submit", function (e) {
    e.preventDefault();
    var nick = $("nick").value.trim();
    localStorage.setItem("chat.nick", nick);
    joinedNick = nick;
    if (socket.connected) join(nick); else socket.connect();
  });

  $("sendform").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("text").value;
    if (!text.trim()) return;
    var cid = Date.now().toString(36) + Math.random().toString(36).slice(2);
    socket.emit("message", { room: room, text: text, cid: cid }, function (ack) {
      if (ack.ok) { $("text").value = ""; $("error").textContent = ""; } else showError(ack);
    });
  });
  if ($("nick").value) { joinedNick = $("nick").value.trim(); socket.connect(); }
})();
