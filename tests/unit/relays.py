"""python-socketio's pub/sub emit of an announcement, as nodes once relayed each other:
for tests that such a message, wherever it arrives, is acted on by no one."""


def announcement(room="lobby", text="ann joined", **changes):
    """python-socketio's PubSubManager.emit message of
    ``sio.emit("announcement", {room, text, ts}, room=room)``; ``changes`` replace keys."""
    data = {"method": "emit", "event": "announcement",
            "data": [{"room": room, "text": text, "ts": 1_700_000_000_000}],
            "binary": False, "namespace": "/", "room": room, "skip_sid": None,
            "callback": None, "host_id": "0123456789abcdef0123456789abcdef"}
    data.update(changes)
    return data
