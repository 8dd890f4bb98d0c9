"""python-socketio client manager over the broker, on ``zmq.green``.

The only module of the web side that imports zmq.  Three sockets per node:

- intake DEALER -> broker ROUTER: ``publish`` requests (acked once sequenced)
  and python-socketio's own pub/sub traffic (``relay``: emits to rooms,
  remote disconnects, callbacks) that the base class publishes;
- SUB <- broker PUB: sequenced messages, relays and heartbeats;
- snapshot DEALER -> broker ROUTER: room snapshots and history repairs.

Chat messages never take the base class's "emit locally, then publish" path:
they go node -> broker -> every node (this one too) and are emitted only in
seq order, so the broker's order is the only order.
"""
import collections
import enum
import itertools
import logging
import time

import gevent
from gevent.event import AsyncResult, Event
import zmq.green as zmq
from engineio import packet as eio_packet
from socketio.pubsub_manager import PubSubManager

from chatstream import fastjson, wire
from .mirror import Mirror, Outcome

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not answer in time (or cannot be reached at all)."""


class LinkState(enum.Enum):
    CONNECTING = "connecting"   # no heartbeat heard yet
    SYNCING = "syncing"         # heartbeat heard, snapshot being installed
    LIVE = "live"               # mirror follows the broker's stream
    DOWN = "down"               # heartbeats stopped: broker gone or unreachable


class RequestChannel:
    """A DEALER with many requests in flight, matched to replies by ``rid``.

    Sends never block: with ``IMMEDIATE`` set, a broker that is not connected
    refuses at once and the caller hears :class:`BrokerUnavailable`.
    """

    def __init__(self, context, endpoint, hwm):
        self.endpoint = endpoint
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.RCVHWM, hwm)
        self.socket.connect(endpoint)
        self.rids = itertools.count(1)
        self.pending = {}       # rid -> AsyncResult
        self.reader = gevent.spawn(self._read)

    def send(self, type_, **fields):
        """Fire and forget; False when the frame could not be queued."""
        try:
            self.socket.send(wire.encode(type_, **fields), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def request(self, type_, timeout, **fields):
        """Send a request and wait for its reply body."""
        rid = next(self.rids)
        result = self.pending[rid] = AsyncResult()
        try:
            if not self.send(type_, rid=rid, **fields):
                raise BrokerUnavailable("broker not connected at %s" % self.endpoint)
            reply = result.get(timeout=timeout)
        except gevent.Timeout:
            raise BrokerUnavailable("no reply from %s in %.1f s" % (self.endpoint, timeout)) from None
        finally:
            self.pending.pop(rid, None)
        if reply["type"] == "error":
            raise BrokerUnavailable("broker refused: %s" % reply.get("detail"))
        return reply

    def _read(self):
        while True:
            try:
                body = wire.decode(self.socket.recv())
            except wire.WireError as exc:
                log.warning("bad reply from %s: %s", self.endpoint, exc)
                continue
            except zmq.ZMQError:
                return  # socket closed
            result = self.pending.get(body.get("rid"))
            if result is None:
                log.info("late reply from %s dropped: %s", self.endpoint, body.get("type"))
            else:
                result.set(body)


class ZmqManager(PubSubManager):
    """Client manager that makes the broker the single source of order.

    :param node: this node's name, stamped on messages its clients author.
    :param intake: the broker's intake endpoint.
    :param publish: the broker's publish endpoint.
    :param snapshot: the broker's snapshot endpoint.
    :param history_size: messages kept per room (as on the broker).
    :param ack_timeout_s: how long a message waits to be sequenced.
    :param heartbeat_ms: the broker's heartbeat period.
    :param dead_after_ms: silence after which the broker counts as down.
    :param hwm: high-water mark of every socket.
    """
    name = "zmq-broker"

    def __init__(self, node="node", intake="tcp://127.0.0.1:5555",
                 publish="tcp://127.0.0.1:5556", snapshot="tcp://127.0.0.1:5557",
                 history_size=50, ack_timeout_s=5.0, heartbeat_ms=1000,
                 dead_after_ms=3000, hwm=100_000, logger=None):
        super().__init__(channel="chat", logger=logger)
        self.node = node
        self.endpoints = {"intake": intake, "publish": publish, "snapshot": snapshot}
        self.ack_timeout_s = ack_timeout_s
        self.heartbeat_ms = heartbeat_ms
        self.dead_after_ms = dead_after_ms
        self.hwm = hwm
        self.mirror = Mirror(history_size)
        self.state = LinkState.CONNECTING
        self.synced = Event()        # set once the first snapshot is installed
        self.broker_instance = None  # the instance the mirror was synced with
        self.last_heard = 0.0
        self.context = self.intake = self.snapshots = self.sub = None
        self.subscribed = set()      # rooms whose topic this node follows (local members)
        self.installing = {}         # room -> live messages held while its state is fetched
        self.installed = {}          # room -> Event set when that fetch ends
        self.presence = {}           # room -> [nick], cluster-wide, from the broker
        self.stopping = False        # said goodbye: report no more members
        self.local_members = collections.defaultdict(collections.Counter)  # room -> nick -> conns
        self.frame_handlers = {"message": self._on_message, "relay": self._on_relay,
                               "heartbeat": self._on_heartbeat, "presence": self._on_presence,
                               "announcement": self._on_announcement}
        self.relay_handlers = {"emit": self._handle_emit, "callback": self._handle_callback,
                               "disconnect": self._handle_disconnect,
                               "enter_room": self._handle_enter_room,
                               "leave_room": self._handle_leave_room,
                               "close_room": self._handle_close_room}

    # lifecycle

    def initialize(self):
        """Connect the sockets and start the listener (once, before serving)."""
        if self.context is not None:
            return
        self.context = zmq.Context.instance()
        self.intake = RequestChannel(self.context, self.endpoints["intake"], self.hwm)
        self.snapshots = RequestChannel(self.context, self.endpoints["snapshot"], self.hwm)
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, self.hwm)
        # Cluster-wide topics only; a room's topic is followed while it has local members.
        for topic in wire.CLUSTER_TOPICS:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.sub.connect(self.endpoints["publish"])
        super().initialize()   # starts _thread as a background task
        self.server.start_background_task(self._report_presence_forever)
        self._get_logger().info("node %s: broker intake %s, publish %s, snapshot %s",
                                self.node, *self.endpoints.values())

    @property
    def broker_up(self):
        return self.state is LinkState.LIVE

    # chat messages: node -> broker -> every node

    def sequence(self, room, nick, text, cid=None):
        """Have the broker sequence a message; returns ``(message, duplicate)``.

        Raises :class:`BrokerUnavailable` when it is not sequenced in time.
        """
        reply = self.intake.request("publish", self.ack_timeout_s, room=room, nick=nick,
                                    text=text, node=self.node, cid=cid)
        return reply["message"], reply["duplicate"]

    def wait_synced(self, timeout):
        """True once the mirror holds a broker snapshot."""
        return self.synced.wait(timeout)

    # room streams: followed while the room has local members

    def follow(self, room):
        """Make sure this node follows a room's stream before a member joins it.

        The first local member subscribes to the room's topic, then installs the
        broker's state of the room; live messages that arrive meanwhile are held
        and merged by seq (the Clone pattern, per room).  Raises
        :class:`BrokerUnavailable` if the state cannot be fetched.
        """
        if room in self.subscribed and room not in self.installing:
            return
        if room in self.installing:      # another join is fetching it: wait for that
            self.installed[room].wait(self.ack_timeout_s)
            if room not in self.subscribed or room in self.installing:
                raise BrokerUnavailable("room %s could not be fetched" % room)
            return
        self.installing[room] = []
        done = self.installed[room] = Event()
        self.subscribed.add(room)
        self.sub.setsockopt(zmq.SUBSCRIBE, wire.room_topic(room))
        try:
            reply = self.snapshots.request("history", self.ack_timeout_s, room=room)
            self.mirror.install_room(room, reply)
            held = self.installing.pop(room)
            for body in held:
                self._on_message(body)
        except BrokerUnavailable:
            self.installing.pop(room, None)
            self._unfollow(room)
            raise
        finally:
            self.installed.pop(room, None)
            done.set()

    def release(self, room):
        """Stop following a room that was fetched for a join that did not happen."""
        if room not in self.local_members:
            self._unfollow(room)

    def _unfollow(self, room):
        """The last local member left: stop following (and forget) the room."""
        if room in self.subscribed and room not in self.installing:
            self.subscribed.discard(room)
            self.sub.setsockopt(zmq.UNSUBSCRIBE, wire.room_topic(room))
            self.mirror.rooms.pop(room, None)

    # presence: this node's members, reported to the broker

    def member_joined(self, room, nick):
        self.local_members[room][nick] += 1
        self._report_presence({room: self._local_nicks(room)})

    def member_left(self, room, nick):
        members = self.local_members[room]
        members[nick] -= 1
        if members[nick] <= 0:
            del members[nick]
        if not members:
            del self.local_members[room]
            self._unfollow(room)
        self._report_presence({room: self._local_nicks(room)})

    def _local_nicks(self, room):
        return sorted(self.local_members.get(room, ()))

    def _report_presence(self, rooms, full=False, bye=False):
        if self.stopping:
            return
        self.stopping = bye
        self.intake.send("presence", node=self.node, rooms=rooms, full=full, bye=bye)

    def _report_presence_forever(self):
        """The whole member set every heartbeat: keeps this node alive in the
        broker's registry and heals any report that was lost."""
        while True:
            gevent.sleep(self.heartbeat_ms / 1000.0)
            self._report_presence({room: self._local_nicks(room) for room in self.local_members},
                                  full=True)

    def goodbye(self):
        """Tell the broker this node is stopping: its members leave at once."""
        if self.intake is not None:
            self._report_presence({}, full=True, bye=True)

    def members(self, room):
        """Cluster-wide nicks in a room, as the broker last reported them."""
        return list(self.presence.get(room, ()))

    def active_rooms(self):
        """[(room, member count)] of rooms with members, most populated first."""
        return sorted(((room, len(nicks)) for room, nicks in self.presence.items() if nicks),
                      key=lambda item: (-item[1], item[0]))

    # python-socketio pub/sub extension points

    def _publish(self, data):
        room = data.get("room")
        topic = room if isinstance(room, str) else None
        if not self.intake.send("relay", topic=topic, data=data):
            self._get_logger().warning("broker unreachable, %s not relayed", data.get("method"))

    def _listen(self):  # pragma: no cover - _thread below reads the SUB socket itself
        raise NotImplementedError

    def _thread(self):
        """The link's state machine: read SUB, sync, repair; a watchdog greenlet
        notices when heartbeats stop."""
        self.server.start_background_task(self._watch_heartbeats)
        while True:
            try:
                self._step()
            except Exception:
                self._get_logger().exception("broker link error")
                gevent.sleep(0.1)

    def _step(self):
        """Read and handle one SUB frame (blocks this greenlet until there is one)."""
        frames = self.sub.recv_multipart()
        if len(frames) != 2:
            self._get_logger().warning("dropped frame with %d parts", len(frames))
            return
        self.last_heard = time.monotonic()
        try:
            body = wire.decode(frames[1])
        except wire.WireError as exc:
            self._get_logger().warning("bad frame on %r: %s", frames[0][:32], exc)
            return
        handler = self.frame_handlers.get(body["type"])
        if handler is not None:
            handler(body)

    def _watch_heartbeats(self):
        """Mark the broker down after ``dead_after_ms`` without a frame from it."""
        while True:
            gevent.sleep(min(self.heartbeat_ms, self.dead_after_ms) / 4000.0)
            silent_ms = (time.monotonic() - self.last_heard) * 1000
            if self.state is not LinkState.DOWN and self.state is not LinkState.CONNECTING \
                    and silent_ms > self.dead_after_ms:
                self._set_state(LinkState.DOWN, "no heartbeat for %d ms" % silent_ms)

    def _set_state(self, state, why):
        if state is not self.state:
            self._get_logger().info("broker link %s -> %s (%s)", self.state.value, state.value, why)
            self.state = state

    # SUB frame handlers

    def _on_heartbeat(self, body):
        if self.state is not LinkState.LIVE or body.get("broker") != self.broker_instance:
            self._sync(body.get("broker"))
            return
        for room, seq in (body.get("seqs") or {}).items():
            if room not in self.subscribed or room in self.installing:
                continue
            epoch, known = self.mirror.position(room)
            if epoch == body.get("epoch") and known < seq:
                self._get_logger().warning("room %s: behind the broker (%d < %d), repairing",
                                           room, known, seq)
                self._repair(room)

    def _on_message(self, body):
        if self.state is not LinkState.LIVE:
            return  # the snapshot that ends the sync covers it
        message = body["message"]
        room = message["room"]
        if room in self.installing:
            self.installing[room].append(body)
            return
        if room not in self.subscribed:
            return  # sent before our unsubscribe took effect
        outcome = self.mirror.apply(message, body["epoch"])
        if outcome is Outcome.APPLIED:
            self._deliver(message)
        elif outcome is Outcome.GAP:
            self._repair(message["room"])

    def _on_presence(self, body):
        room, members = body["room"], body["members"]
        if members:
            self.presence[room] = members
        else:
            self.presence.pop(room, None)
        self._emit_local("presence", {"room": room, "members": members}, room)

    def _on_announcement(self, body):
        self._emit_local("announcement", {"room": body["room"], "text": body["text"],
                                          "ts": body["ts"]}, body["room"])

    def _on_relay(self, body):
        data = body.get("data") or {}
        if data.get("host_id") == self.host_id and data.get("method") != "callback":
            return  # our own emit, already handled locally by the base class
        handler = self.relay_handlers.get(data.get("method"))
        if handler is not None:
            handler(data)

    # sync and repair

    def _sync(self, instance):
        """Install a full snapshot (Clone pattern): SUB is connected first, so
        everything published after the snapshot is queued on it and merged by seq."""
        self._set_state(LinkState.SYNCING, "broker %s" % instance)
        try:
            reply = self.snapshots.request("snapshot", self.ack_timeout_s,
                                           rooms=sorted(self.subscribed))
        except BrokerUnavailable as exc:
            self._set_state(LinkState.DOWN, str(exc))
            return
        missed, broken = self.mirror.install(reply["epoch"], reply["rooms"])
        self.presence = dict(reply.get("presence") or {})
        self.broker_instance = reply["broker"]
        self.last_heard = time.monotonic()
        self._set_state(LinkState.LIVE, "snapshot of %d rooms" % len(reply["rooms"]))
        self.synced.set()
        self._report_presence({room: self._local_nicks(room) for room in self.local_members},
                              full=True)
        for messages in missed.values():   # sequenced while this node was not listening
            for message in messages:
                self._deliver(message)
        for room in broken:
            self._restart_readers(room)

    def _repair(self, room):
        """Fetch what this node missed of one room from the broker's buffer."""
        epoch, seq = self.mirror.position(room)
        try:
            reply = self.snapshots.request("history", self.ack_timeout_s,
                                           room=room, since=seq, epoch=epoch)
        except BrokerUnavailable as exc:
            self._set_state(LinkState.DOWN, "repair of %s failed: %s" % (room, exc))
            return
        if reply["gap"]:
            self.mirror.install_room(room, reply)
            self._restart_readers(room)
            return
        for message in reply["history"]:
            if self.mirror.apply(message, reply["epoch"]) is Outcome.APPLIED:
                self._deliver(message)

    def _restart_readers(self, room):
        """This node cannot continue the room's stream for its members: disconnect
        them, so they rejoin with ``since`` and hear ``gap`` (never a silent hole)."""
        members = [sid for sid, _ in self.get_participants("/", room)]
        self._get_logger().warning("room %s: stream broken, restarting %d local members",
                                   room, len(members))
        for sid in members:
            self.server.disconnect(sid, ignore_queue=True)

    def _deliver(self, message):
        self._emit_local("message", message, message["room"])

    def _emit_local(self, event, data, room):
        """Emit an event to this node's members of a room (default namespace).

        What ``server.emit(event, data, room=room, ignore_queue=True)`` does,
        minus its per-member layers: the Socket.IO packet is encoded once (with
        orjson) and the same Engine.IO packet goes to every member's socket,
        whose ``send`` writes it straight to an idle websocket (websocket.py).
        """
        members = self.rooms.get("/", {}).get(room)
        if not members:
            return
        payload = fastjson.dumps([event, data], separators=fastjson.COMPACT)
        pkt = eio_packet.Packet(eio_packet.MESSAGE, "2" + payload)   # 2: Socket.IO EVENT
        sockets = self.server.eio.sockets
        for eio_sid in list(members._fwdm.values()):
            socket = sockets.get(eio_sid)
            if socket is not None and not socket.closed:
                socket.send(pkt)
