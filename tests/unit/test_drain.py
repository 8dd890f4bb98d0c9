"""A node's drain (chat/operations/drain.py): its plan, its pace, how it closes a session;
and what scripts/node reads around it (deploy/pair.py, deploy/node.py)."""
import json
import logging
from types import SimpleNamespace

import pytest

from chat.operations import drain
from chat.operations.logfilters import DemoteClosedSession
from deploy import node, pair


def test_a_plan_is_read_and_a_bad_one_refused(tmp_path):
    path = tmp_path / "node2.json"
    path.write_text(json.dumps({"over_s": 30, "batch": 100}))
    assert drain.read_plan(path) == (30.0, 100)
    path.write_text(json.dumps({"over_s": 5, "batch": None}))
    assert drain.read_plan(path) == (5.0, None)
    for bad in ({"over_s": -1}, {"over_s": 10, "batch": 0}, {"over_s": 10, "batch": "9"},
                {"batch": 3}, [1]):
        path.write_text(json.dumps(bad))
        with pytest.raises(drain.PlanError):
            drain.read_plan(path)
    with pytest.raises(drain.PlanError):
        drain.read_plan(tmp_path / "missing.json")


def test_the_pace_spreads_the_batches_so_the_last_leaves_at_the_planned_time():
    assert drain.pace(10, over_s=3, batch=2) == (2, 0.75)       # 5 batches, 4 intervals
    batch, interval_s = drain.pace(30, over_s=10)               # one second's share each
    assert batch == 3 and interval_s == pytest.approx(10 / 9)
    assert drain.pace(7, over_s=0) == (7, drain.TICK_S)         # at once
    assert drain.pace(0, over_s=10)[0] == 1


class FakeSocket:
    def __init__(self, sid, closed=False):
        self.sid, self.closed, self.closing, self.closes = sid, closed, False, []

    def close(self, **how):
        self.closes.append(how)
        self.closed = True


def fake_server(count, closed=()):
    sockets = {sid: FakeSocket(sid, sid in closed) for sid in range(count)}
    reason = SimpleNamespace(SERVER_DISCONNECT="server disconnect")
    return SimpleNamespace(eio=SimpleNamespace(sockets=sockets, reason=reason)), sockets


def test_a_batch_closes_open_sessions_oldest_first_without_engineio_close_packet():
    sio, sockets = fake_server(5, closed={0})
    assert drain.Drain(sio, "unused").close_batch(2) == 2
    assert [sid for sid, s in sockets.items() if s.closes] == [1, 2]
    # abort: no CLOSE packet, after which python-socketio's client would not reconnect
    assert sockets[1].closes == [{"wait": False, "abort": True, "reason": "server disconnect"}]


def test_a_drain_runs_until_no_session_is_open(monkeypatch):
    sio, sockets = fake_server(4)
    monkeypatch.setattr(drain, "open_sessions", lambda table: sum(not s.closed for s in table.values()))
    drain.Drain(sio, "unused").run(over_s=0)
    assert all(s.closed for s in sockets.values())


def test_a_signal_without_a_readable_plan_changes_nothing(tmp_path, caplog):
    sio, sockets = fake_server(2)
    watcher = drain.Drain(sio, tmp_path / "none.json")
    with caplog.at_level(logging.ERROR):
        watcher.on_signal()
    assert not watcher.active and not any(s.closes for s in sockets.values())
    assert "no plan" in caplog.text


def test_a_forgotten_session_asked_for_again_is_routine():
    record = logging.LogRecord("engineio.server", logging.ERROR, __file__, 1,
                               "Invalid session %s", ("abc",), None)
    DemoteClosedSession().filter(record)
    assert record.levelno == logging.INFO


def test_the_default_pair_is_found_with_its_metrics_and_logs():
    found = pair.brokers(node.ROOT / "supervisord.conf", {})
    assert {name: b.metrics_url for name, b in found.items()} == {
        "broker": "http://127.0.0.1:5558", "broker2": "http://127.0.0.1:5568"}
    assert found["broker2"].log == node.ROOT / "var/log/broker2.log"


def test_open_sessions_add_up_every_transport(monkeypatch):
    text = ('# HELP chat_connections x\nchat_connections{transport="websocket"} 3.0\n'
            'chat_connections{transport="polling"} 2.0\nchat_rooms_local 1.0\n')

    class Answer:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return text.encode()
    monkeypatch.setattr(node.urllib.request, "urlopen", lambda url, timeout: Answer())
    assert node.open_sessions("http://127.0.0.1:1") == 5


def test_a_drain_that_cannot_empty_the_node_stops_past_its_plan(monkeypatch):
    sio, sockets = fake_server(2)
    monkeypatch.setattr(drain, "open_sessions", lambda table: 1)   # one that never leaves
    monkeypatch.setattr(drain, "LATE_S", 0.0)
    drain.Drain(sio, "unused").run(over_s=0.05, batch=1)
    assert all(s.closed for s in sockets.values())
