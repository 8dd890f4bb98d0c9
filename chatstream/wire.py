"""Wire format between web nodes and the broker (version 1).

Every ZeroMQ message body is one UTF-8 JSON object with a ``type`` and the
format version ``v``, written and read by :mod:`chatstream.fastjson` (orjson;
a body it will not write, e.g. one with a lone UTF-16 surrogate, is written as
ASCII JSON by the stdlib, so every str still travels).  The frames per socket are:

intake (node DEALER -> broker ROUTER, default port 5555)::

    node -> broker   [body]                 body.type in {"publish", "change", "announce",
                                                          "presence", "revoke", "evict", "access",
                                                          "archived", "typing", "read", "usage"}
    broker -> node   [body]                 body.type in {"published", "error"}

publish (broker PUB -> node SUB, default port 5556)::

    [topic, body]    topic = room_topic(room) for "message" and "announcement"
                     (a node subscribes to the rooms it has members in),
                     PRESENCE_TOPIC for "presence" (every node: the lobby
                     lists all rooms),
                     HEARTBEAT_TOPIC for "heartbeat",
                     REVOKE_TOPIC for "revoke" (every node),
                     EVICT_TOPIC for "evict" (every node),
                     ACCESS_TOPIC for "access" (every node),
                     room_topic(room) for "typing",
                     READ_TOPIC for "read", USAGE_TOPIC for "usage" (every node)

snapshot (node DEALER -> broker ROUTER, default port 5557)::

    node -> broker   [body]                 body.type in {"snapshot", "history",
                                            "archive_rooms", "archive_events"}
    broker -> node   [body]                 same type as the request, or "error"

Requests carry a ``rid`` (request id, chosen by the node) that the reply
echoes, so one DEALER can have many requests in flight.

Bodies by type (besides ``v`` and ``type``):

- ``publish``   {rid, room, nick, text, node, cid|null, uid, quiet?}: ``uid`` is the
  author's identity (chatstream.rules.uid), copied into the Message; the broker
  sequences a publish without one (a node from before uids) into a Message without one.
  With CURVE the broker takes it only when ``node`` registered ``uid`` as ``nick`` in
  ``room`` (its ``presence`` reports), else ``error`` ``not_member``.
  ``quiet: true`` (a node subscribed to the room, with a cid): no ``published``
  reply when the message is new -- the node takes the message on PUB (it carries
  node and cid) as the ack; a duplicate or a refusal is still answered
- ``change``    {rid, room, kind: "edit"|"delete", target, epoch, node, uid, cid, nick?,
  text?, staff?, proof?}: an edit (with ``nick`` and ``text``) or delete of message
  ``target`` of ``epoch``, decided by the node (author or moderator; ``staff: true`` on a
  delete from the Django admin, whose ``uid`` is no connection in the room, with the uid's
  ``proof``, chatstream/uid_proofs.py); the broker sequences it as a
  room event of its own (chatstream/room_events.py) -- answered ``published``, or
  ``error`` ``not_found`` when the target is not (or no longer) a message of the room
- ``published`` {rid, message: Message, duplicate: bool}
- ``announce``  node -> broker {room, text, node}: no rid, no reply (like
  ``presence``); ``text`` is "<nick> joined" or "<nick> left"
  (chatstream.rules.announcement).  The broker publishes it as an
  ``announcement`` on the room's topic, in order with the room's messages
- ``presence``  node -> broker {node, rooms: {room: [[nick, uid]]}, proofs: {uid: proof},
  full, bye, part, more}: the node's members, one per connection's nick and uid (a bare
  nick: a member without a uid), with the proof of each uid of the frame
  (chatstream/uid_proofs.py; with CURVE the broker drops a member without a valid one,
  and a broker before proofs ignores the field); changed rooms every presence interval (a room's change
  at once before a connection's message in it), an empty
  report as keepalive every heartbeat; ``full``: its whole state, every 30 s and
  after a resync or a stall; ``bye``: the node is stopping), in
  parts of at most one payload's size each (``part`` 0, 1 ...; ``more`` on all
  but the last; a room may continue in the next part); broker -> node {room,
  members: [nick]} when a room's cluster-wide member list changed (at most
  once per presence interval)
- ``revoke``    node -> broker {session, node}: an account logged out of a Django
  session; no rid, no reply.  ``session`` is the node's reference to it
  (chatstream.rules.session_ref: an HMAC of the session key, never the key).  The
  broker publishes {session} on REVOKE_TOPIC and every node disconnects the
  Socket.IO connections opened with that session
- ``evict``     node -> broker {room|null, uid, reason, until|null, node}: ``uid``'s
  connections are to leave ``room`` (null: every room) on every node; no rid, no
  reply.  ``reason`` is a short word (chatstream.rules.evict_reason): "banned" (a
  moderator's ban, ``until`` its end in Unix ms, null for good) or "removed" (a
  private room's member taken out).  The broker publishes {room, uid, reason, until}
  on EVICT_TOPIC; every node makes that uid's connections leave the room as a
  ``leave`` would.  Not stored and not replayed: what it stands for is in the
  nodes' database, which a node reads again when it resyncs
- ``access``    node -> broker {room, node}: who may read ``room`` changed (a private
  room made, a member invited or removed); no rid, no reply.  The broker publishes
  {room} on ACCESS_TOPIC and every node forgets what it cached of the room's members
  (web/rooms/access.py) before it handles anything published after it
- ``typing``    node -> broker {room, nick, uid, node}: a member is typing; no rid, no
  reply.  Taken only from a connection (uid under nick) the node registered in the room,
  as a room event's author; the broker publishes {room, nick, uid} on the room's topic:
  not sequenced, not stored, not replicated (a lost one is forgotten)
- ``read``      node -> broker {uid, room, epoch, seq, node}: an account's read position
  moved forward; no rid, no reply.  Published as is on READ_TOPIC: every node tells that
  account's connections and remembers it until its database holds it (web/reading)
- ``usage``     node -> broker {node, spent: {key: {event: count}}}: what this node let
  each person do since its last report (at most USAGE_KEYS_PER_FRAME keys; ``key`` a
  person's uid or a guest address's key, chatstream.rules.person_key); no rid, no reply.
  Published as is on USAGE_TOPIC: every other node charges it to its per-person limits
- ``presences`` broker -> node {rooms: {room: [nick]}}: the rooms whose lists
  changed in one presence interval, in one frame (2 or more rooms, at most
  PRESENCE_ROOMS_PER_FRAME and about PRESENCE_NICKS_PER_FRAME nicks): read as
  one ``presence`` body per room (:func:`unbatch`)
- ``announcement`` {room, text, ts}: said by the broker (``ts`` its clock): a
  node's ``announce``, or "<nick> left" for the members of a node that is gone
- ``message``   {message: Message, epoch}
- ``messages``  {messages: [Message], epoch}: consecutive messages of one room
  sequenced in one batch (2 to MESSAGES_PER_FRAME), in seq order; read as
  that many ``message`` bodies
- ``heartbeat`` {broker, epoch, term, ts, seqs: {room: seq}} seqs holds the rooms that
  changed since the previous heartbeat, so a node notices a lost tail; ``term``
  is the failover pair's Binary Star term (0 alone): nodes follow the newest.  An
  active whose output waits for its passive also sends one with empty seqs
- ``snapshot``  request {rid, rooms: [room]|null (null: all)}; reply {rid, broker, epoch, rooms: {room: RoomState},
  presence: {room: [nick]}}
- ``history``   request {rid, room, since, epoch}; reply {rid, room, epoch,
  seq, history: [Message], gap}.  ``(epoch, since)`` is the last position the
  asker saw (``since`` null: it saw nothing, send the whole buffer; ``epoch``
  null: read as the room's own epoch).  The reply is the room's position and
  every message after ``since``, or ``gap: true`` with the whole buffer when
  that cannot be given: ``epoch`` is another stream (the broker lost its state
  and started a new epoch, so seqs do not compare), ``since`` lies ahead of
  ``seq``, or messages after ``since`` have left the buffer
  (:meth:`chatstream.history.RoomHistory.view`)
- ``archived``  archiver -> broker on intake {node, rooms: {room: [epoch, seq]}}: the
  archive holds each room's events up to seq; no rid, no reply.  Once one came,
  the broker's store keeps a room's events beyond its buffer until they are archived
- ``archive_rooms`` request {rid, after?, limit?}; reply {rid, rooms: {room: [epoch, seq,
  archived]}, more}: stored rooms whose seq is beyond what was reported archived,
  by name after ``after``, a page at a time
- ``archive_events`` request {rid, room, since, epoch, limit?}; reply {rid, room, epoch,
  seq, events: [Message], gap}: the room's stored events after ``since`` (all of
  them when ``epoch`` is another), oldest first, a page at a time; ``gap`` when
  the next one after ``since`` is no longer stored.  These three are the archiver's
  key's alone (CHAT_ARCHIVER_NAME); another key gets ``error`` ``forbidden``
- ``error``     {rid|null, error, detail}: ``error`` is ``bad_request``, ``not_active``
  (the passive of a pair), ``not_member`` (see ``publish``), ``forbidden`` (an archive
  request from a key not the archiver's) or ``internal``

Message = {id, seq, room, kind: "message", nick, text, ts, node, cid?, uid?} exactly as
clients see it (every node of this version sends ``uid``; messages stored before it have
none, nor ``kind``, which the nodes add where the contract lists events); an
edited one also has ``edited`` (ts), a deleted one is a tombstone {id, seq, room, ts,
cid?, deleted: true}.  A room event that is an edit or delete travels in the same
place as a Message: {id, seq, room, kind, target, ts, node, uid, cid, nick?, text?}
(``message`` and ``messages`` bodies, buffers, snapshots, the store).
RoomState = {epoch, seq, history: [Message]}.
"""
from . import fastjson
from .rules import ROOM_RE  # noqa: F401 - room names on the wire are the contract's (topics)

VERSION = 1

HEARTBEAT_TOPIC = b"\x01heartbeat"
PRESENCE_TOPIC = b"\x01presence"
REVOKE_TOPIC = b"\x01revoke"
EVICT_TOPIC = b"\x01evict"
ACCESS_TOPIC = b"\x01access"
READ_TOPIC = b"\x01read"
USAGE_TOPIC = b"\x01usage"
# Every node subscribes to these; room topics come and go with local members.
CLUSTER_TOPICS = (HEARTBEAT_TOPIC, PRESENCE_TOPIC, REVOKE_TOPIC, EVICT_TOPIC, ACCESS_TOPIC,
                  READ_TOPIC, USAGE_TOPIC)

# Request/reply and publish types; anything else is refused by decode().
TYPES = frozenset({
    "publish", "published", "announce", "message", "messages", "heartbeat", "presences",
    "snapshot", "history", "error", "presence", "announcement",
    "archived", "archive_rooms", "archive_events", "revoke", "evict", "access", "change",
    "typing", "read", "usage",
})

# Persons in one ``usage`` frame at most: ~60 bytes each, well under the broker's
# frame limit (config.BROKER_MAX_FRAME_BYTES); a node with more sends several.
USAGE_KEYS_PER_FRAME = 200


class WireError(ValueError):
    """A frame that is not a valid version-1 body."""


def room_topic(room):
    """The PUB topic of a room.

    ZeroMQ subscriptions match by prefix; the NUL terminator keeps room "a"
    from receiving room "ab".
    """
    return room.encode("utf-8") + b"\x00"


# Most messages in one ``messages`` frame: 64 of the largest are ~1.5 MB, far
# under a node's frame limit (config.NODE_MAX_FRAME_BYTES).
MESSAGES_PER_FRAME = 64


def encode_messages(epoch, messages):
    """One room's messages of a batch as one PUB body (``message`` for one)."""
    if len(messages) == 1:
        return encode("message", message=messages[0], epoch=epoch)
    return encode("messages", messages=messages, epoch=epoch)


# A ``presences`` frame holds at most this many rooms, and another room only while
# it has fewer nicks than this (~36 bytes each on the wire: ~0.7 MB).
PRESENCE_ROOMS_PER_FRAME = 1000
PRESENCE_NICKS_PER_FRAME = 20_000


def encode_presences(changes):
    """The changed rooms' member lists ({room: [nick]}) as PUB bodies: ``presences``
    frames of several rooms, a ``presence`` frame for a room alone."""
    frames, rooms, nicks = [], {}, 0
    for room, members in changes.items():
        if rooms and (len(rooms) >= PRESENCE_ROOMS_PER_FRAME
                      or nicks + len(members) > PRESENCE_NICKS_PER_FRAME):
            frames.append(_presence_frame(rooms))
            rooms, nicks = {}, 0
        rooms[room] = members
        nicks += len(members)
    if rooms:
        frames.append(_presence_frame(rooms))
    return frames


def _presence_frame(rooms):
    if len(rooms) == 1:
        [(room, members)] = rooms.items()
        return encode("presence", room=room, members=members)
    return encode("presences", rooms=rooms)


def unbatch(body):
    """The single bodies a PUB body stands for, in order: a ``messages`` batch's
    ``message`` bodies, a ``presences`` batch's ``presence`` bodies, or the body."""
    kind = body["type"]
    if kind == "messages":
        epoch, messages = body.get("epoch"), body.get("messages")
        if not isinstance(messages, list):
            raise WireError("messages is not a list")
        return [{"type": "message", "message": m, "epoch": epoch} for m in messages]
    if kind == "presences":
        rooms = body.get("rooms")
        if not isinstance(rooms, dict):
            raise WireError("rooms is not an object")
        return [{"type": "presence", "room": r, "members": m} for r, m in rooms.items()]
    return (body,)


def encode(type_, **fields):
    """Encode a body of the given type to bytes."""
    return encode_typed(TYPES, type_, fields)


def encode_typed(types, type_, fields):
    """Encode ``fields`` as a body of ``type_``, one of ``types``: this format
    for another set of frames (the brokers' peer link, broker/replication.py)."""
    if type_ not in types:
        raise WireError("unknown type %r" % (type_,))
    fields["v"] = VERSION
    fields["type"] = type_
    return fastjson.dumpb(fields)


def decode(frame, types=TYPES):
    """Decode one body frame of one of ``types``, raising WireError for anything malformed."""
    try:
        body = fastjson.loads(frame)
    except (ValueError, TypeError) as exc:
        raise WireError("not JSON: %s" % exc) from None
    if not isinstance(body, dict):
        raise WireError("body is not an object")
    version = body.get("v")
    if type(version) is not int or version != VERSION:  # JSON true is not version 1
        raise WireError("unsupported version %r" % (version,))
    if not isinstance(body.get("type"), str) or body["type"] not in types:
        raise WireError("unknown type %r" % (body.get("type"),))
    return body
