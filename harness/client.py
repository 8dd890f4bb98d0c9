"""A real python-socketio chat client that records what the server sends."""
import threading
import time
import uuid

import socketio


def new_room(prefix="room"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class ChatClient:
    """A real python-socketio client that records what the server sends."""

    def __init__(self, url, transports=("websocket",), name="client", cookies=None):
        self.url = url
        self.name = name
        self.messages = []
        self.announcements = []
        self.presence = []
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.disconnected = threading.Event()   # set when the connection ends, whoever ends it
        self.sio.on("disconnect", lambda *reason: self.disconnected.set())
        self.sio.on("message", self._on_message)
        self.sio.on("announcement", self._on_announcement)
        self.sio.on("presence", self._on_presence)
        # cookies ({name: value}, e.g. Django's sessionid) go with the handshake, as a
        # browser's would: the node reads the session from them (PROTOCOL.md "Identity").
        headers = {"Cookie": "; ".join("%s=%s" % kv for kv in cookies.items())} if cookies else {}
        self.sio.connect(url, transports=list(transports), wait_timeout=10, headers=headers)

    def _on_message(self, message):
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def _on_announcement(self, announcement):
        with self.cond:
            self.announcements.append(announcement)
            self.cond.notify_all()

    def _on_presence(self, presence):
        with self.cond:
            self.presence.append(presence)
            self.cond.notify_all()

    def call(self, event, payload=None, timeout=10):
        if payload is None:
            return self.sio.call(event, timeout=timeout)
        return self.sio.call(event, payload, timeout=timeout)

    def join(self, room, nick=None, **extra):
        """Join as ``nick`` (default: the client's name; ``nick=False`` sends none)."""
        payload = dict(room=room, **extra)
        if nick is not False:
            payload["nick"] = nick or self.name
        ack = self.call("join", payload)
        assert ack["ok"], ack
        return ack

    def send(self, room, text, cid=None, timeout=10):
        payload = {"room": room, "text": text}
        if cid is not None:
            payload["cid"] = cid
        return self.call("message", payload, timeout=timeout)

    def room_messages(self, room):
        with self.cond:
            return [m for m in self.messages if m["room"] == room]

    def wait_messages(self, room, count, timeout=15):
        """Block until ``count`` messages of ``room`` arrived (an event, not a sleep)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len([m for m in self.messages if m["room"] == room]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len([m for m in self.messages if m["room"] == room])
                    raise AssertionError("%s: %d of %d messages in %s" % (self.name, got, count, room))
                self.cond.wait(left)
            return [m for m in self.messages if m["room"] == room]

    def wait_announcement(self, room, text, timeout=15):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(a["room"] == room and a["text"] == text for a in self.announcements):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no announcement %r in %s" % (self.name, text, room))
                self.cond.wait(left)

    def wait_presence(self, room, members, timeout=15, after=0):
        """Block until a ``presence`` event (from the ``after``-th on) lists exactly
        ``members`` in ``room``; returns the index just past it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.presence)):
                    if self.presence[i]["room"] == room and self.presence[i]["members"] == members:
                        return i + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no presence %r in %s" % (self.name, members, room))
                self.cond.wait(left)

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass
