"""A chat client that behaves like a careful real one, for fault-injection tests.

It sends numbered messages with cids and retries on `unavailable`, timeouts
and lost connections; when its connection drops it connects to the next node
and resumes with since + epoch.  Its *view* is every message it has, by seq.
"""
import threading
import time

import socketio

ACK_TIMEOUT_S = 6


class ResumingClient:
    """
    :param urls: node URLs to (re)connect to, tried in turn.
    :param room: the room to chat in.
    :param name: the nick, also the cid prefix.
    """

    def __init__(self, urls, room, name):
        self.urls = list(urls)
        self.room = room
        self.name = name
        self.lock = threading.Lock()
        self.view = {}            # seq -> message
        self.live_duplicates = 0  # one seq delivered twice as live events on one connection
        self.gaps = 0
        self.conflicts = []       # (seq, id kept, id refused): two messages under one seq
        self.epoch = None
        self.acked = {}           # cid -> (id, seq)
        self.sent = 0
        self.reconnects = 0
        self.sio = None
        self.url_index = 0
        self.first_ack_after = {}  # fault time -> first ack time after it
        self.connect()

    # connection

    def connect(self, deadline_s=30):
        """Connect to the next node that answers and (re)join with since + epoch."""
        deadline = time.monotonic() + deadline_s
        while True:
            url = self.urls[self.url_index % len(self.urls)]
            try:
                self._connect_to(url)
                return
            except Exception:
                self.url_index += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)   # back-off between attempts, not synchronisation

    def _connect_to(self, url):
        if self.sio is not None:
            # Abandon the old connection without waiting: against a frozen node a
            # clean disconnect blocks until the ping timeout.
            threading.Thread(target=self._quietly_disconnect, args=(self.sio,), daemon=True).start()
        sio = socketio.Client(reconnection=False)
        seen_here = set()

        def on_message(message):
            if message["room"] != self.room:
                return
            with self.lock:
                if message["seq"] in seen_here:
                    self.live_duplicates += 1
                seen_here.add(message["seq"])
                self._merge(message)
        sio.on("message", on_message)
        sio.connect(url, transports=["websocket"], wait_timeout=5)
        with self.lock:
            since = self._contiguous_seq() if self.epoch else None
        payload = {"room": self.room, "nick": self.name}
        if since is not None:
            payload.update(since=since, epoch=self.epoch)
        ack = sio.call("join", payload, timeout=ACK_TIMEOUT_S)
        if not ack.get("ok"):
            sio.disconnect()
            raise ConnectionError("join refused: %r" % (ack,))
        with self.lock:
            if ack["gap"]:
                self.gaps += 1
            self.epoch = ack["epoch"]
            for message in ack["history"]:
                self._merge(message)
        if self.sio is not None:
            self.reconnects += 1
        self.sio = sio

    @staticmethod
    def _quietly_disconnect(sio):
        try:
            sio.disconnect()
        except Exception:
            pass

    def _merge(self, message):
        have = self.view.get(message["seq"])
        if have is not None and have["id"] != message["id"]:
            self.conflicts.append((message["seq"], have["id"], message["id"]))
            return
        self.view[message["seq"]] = message

    def _contiguous_seq(self):
        seq = 0
        while seq + 1 in self.view:
            seq += 1
        return seq

    # sending

    def send_numbered(self, i, deadline_s=60):
        """Send message i until it is acknowledged; returns its ack."""
        cid = "%s-%d" % (self.name, i)
        self.sent += 1
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                if self.sio is None or not self.sio.connected:
                    self.connect()
                ack = self.sio.call("message", {"room": self.room, "text": "%s #%d" % (self.name, i),
                                                "cid": cid}, timeout=ACK_TIMEOUT_S)
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                    socketio.exceptions.ConnectionError, ConnectionError):
                self.url_index += 1            # that node is hung or gone: try the next
                self.connect()
                continue
            if ack.get("ok"):
                with self.lock:
                    self.acked[cid] = (ack["id"], ack["seq"])
                return ack
            if ack.get("error") != "unavailable":
                raise AssertionError("%s: %r" % (cid, ack))
            time.sleep(0.2)                    # retry back-off after `unavailable`
        raise AssertionError("%s: not acknowledged within %d s" % (cid, deadline_s))

    def close(self):
        if self.sio is not None:
            try:
                self.sio.disconnect()
            except Exception:
                pass
