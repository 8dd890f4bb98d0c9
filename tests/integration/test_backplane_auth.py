"""The authenticated, bounded backplane, from outside: real rogue pyzmq peers
against a running broker with CURVE (the harness gives every cluster its own
keys, as scripts/run does).

A peer without a key, or with a well-formed key the broker never authorised,
reads nothing, gets no reply and injects nothing while the real cluster keeps
serving; a node's own key speaks for that node only, and only as the connections that
node registered in the room, each with its uid's proof (which the CURVE key alone cannot
make); a keyed peer sending frames over the limit is disconnected with the broker's memory
unmoved; without keys the broker binds beyond loopback only
when told to, and says so loudly.
"""
import os
import shutil
import signal
import time

import pytest
import requests
import zmq
from zmq.utils.monitor import recv_monitor_message

from broker import keys
from chatstream import config, uid_proofs, wire
from harness.client import new_room
from harness.processes import wait_until

from .test_identity import PASSWORD, logged_in

# Long enough for several heartbeats (1 s) and a message stream to reach a peer
# that can read; a rogue peer must still have nothing after it.
ROGUE_WAIT_S = 3.0
OVERSIZE_FRAME_BYTES = 10 * 2**20
OVERSIZE_FRAMES = 50
# Broker RSS growth allowed while it refuses 500 MB of oversize frames.
RSS_GROWTH_LIMIT_KB = 4 * 1024


@pytest.fixture(scope="module")
def unlisted_key(tmp_path_factory):
    """A valid CURVE key pair that is not in the broker's authorized_nodes/."""
    return str(keys.create(tmp_path_factory.mktemp("rogue-keys"), "rogue")[1])


@pytest.fixture(params=["no key", "unlisted key"])
def rogue(request, unlisted_key):
    """(what the rogue peer holds, its key file for Cluster.broker_socket)."""
    return request.param, {"no key": None, "unlisted key": unlisted_key}[request.param]


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def frames_within(sock, seconds):
    """Every multipart message ``sock`` receives within ``seconds``."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1):
            got.append(sock.recv_multipart())
    return got


def publish_frame(room, text, rid=1, nick="admin", node="node1", cid=None, uid=None):
    return wire.encode("publish", rid=rid, room=room, nick=nick, text=text, node=node,
                       cid=cid or "rogue-%s" % os.urandom(4).hex(), uid=uid)


def room_with_member(cluster, client, node, prefix):
    room = new_room(prefix)
    member = client(cluster.url(node), name="member")
    member.uid = member.join(room)["uid"]
    return room, member


def all_healthy(cluster):
    return all(requests.get(cluster.url(n) + "/healthz", timeout=5).status_code == 200
               for n in ("node1", "node2", "node3"))


def test_a_subscriber_without_an_authorised_key_reads_nothing_while_traffic_flows(
        cluster, client, zctx, rogue):
    room, author = room_with_member(cluster, client, "node1", "sub")
    spy = cluster.broker_socket(zctx, zmq.SUB, "publish", key=rogue[1])
    control = cluster.broker_socket(zctx, zmq.SUB, "publish")     # the node key
    for sock in (spy, control):
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    # the control's subscription is live once the broker's heartbeat reaches it
    wait_until(lambda: control.poll(100), 10, "a heartbeat on the node key's SUB")
    for i in range(10):
        assert author.send(room, "secret %d" % i)["ok"]
    seen, spied = frames_within(control, ROGUE_WAIT_S), frames_within(spy, 0.1)
    topics = {topic for topic, _ in seen}
    print("\nSUB with %s: %d frames in %.0f s (the node key's SUB: %d)"
          % (rogue[0], len(spied), ROGUE_WAIT_S, len(seen)))
    assert wire.room_topic(room) in topics and wire.HEARTBEAT_TOPIC in topics
    assert spied == []


def test_a_snapshot_or_history_request_without_an_authorised_key_gets_no_reply(
        cluster, client, zctx, rogue):
    room, author = room_with_member(cluster, client, "node2", "snap")
    assert author.send(room, "kept from strangers")["ok"]
    asker = cluster.broker_socket(zctx, zmq.DEALER, "snapshot", key=rogue[1])
    asker.send(wire.encode("snapshot", rid="s", rooms=[room]))
    asker.send(wire.encode("history", rid="h", room=room))
    replies = frames_within(asker, ROGUE_WAIT_S)
    print("\nsnapshot + history with %s: %d replies in %.0f s" % (rogue[0], len(replies), ROGUE_WAIT_S))
    assert replies == []
    control = cluster.broker_socket(zctx, zmq.DEALER, "snapshot")
    control.send(wire.encode("history", rid="h", room=room))
    assert control.poll(5000)
    assert wire.decode(control.recv())["history"][0]["text"] == "kept from strangers"


def test_a_publish_without_an_authorised_key_is_neither_delivered_nor_sequenced(
        cluster, client, zctx, rogue):
    room, member = room_with_member(cluster, client, "node3", "inject")
    injector = cluster.broker_socket(zctx, zmq.DEALER, "intake", key=rogue[1])
    for i in range(5):
        injector.send(publish_frame(room, "forged %d" % i, rid=i))
    injector.send(wire.encode("announce", room=room, text="mallory joined", node="node3"))
    acks = frames_within(injector, ROGUE_WAIT_S)
    print("\n5 publishes + 1 announce with %s: %d acks, %d delivered" % (
        rogue[0], len(acks), len(member.room_messages(room))))
    assert acks == []                                           # no ack
    assert member.room_messages(room) == []                     # nothing delivered
    ack = member.send(room, "the first real message")
    assert ack["ok"] and ack["seq"] == 1                        # nothing sequenced
    assert [m["text"] for m in member.wait_messages(room, 1)] == ["the first real message"]
    assert all_healthy(cluster)


def test_a_keyed_peer_sending_oversize_frames_is_cut_off_and_the_broker_stays_small(
        cluster, client, zctx):
    room, member = room_with_member(cluster, client, "node1", "big")
    pid = cluster.broker.pid
    before = rss_kb(pid)
    flooder = cluster.broker_socket(zctx, zmq.DEALER, "intake")   # holds the node key
    monitor = flooder.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    started = time.monotonic()
    text = "x" * OVERSIZE_FRAME_BYTES
    for i in range(OVERSIZE_FRAMES):
        flooder.send(publish_frame(room, text, rid=i))
    # The broker reads each frame's size and drops the connection; the peer
    # reconnects (a new CURVE handshake) and tries the next frame.
    peak, disconnects = before, 0
    deadline = time.monotonic() + 90
    while disconnects < OVERSIZE_FRAMES and time.monotonic() < deadline:
        if monitor.poll(200):
            recv_monitor_message(monitor)
            disconnects += 1
        peak = max(peak, rss_kb(pid))
    after = rss_kb(pid)
    print("\noversize: %d x %d MB from a keyed peer: %d disconnects in %.1f s, broker RSS %d -> "
          "peak %d -> %d KB" % (OVERSIZE_FRAMES, OVERSIZE_FRAME_BYTES >> 20, disconnects,
                                time.monotonic() - started, before, peak, after))
    assert disconnects == OVERSIZE_FRAMES
    assert frames_within(flooder, 1.0) == []
    flooder.disable_monitor()
    monitor.close(0)
    flooder.close(0)
    assert peak - before < RSS_GROWTH_LIMIT_KB
    assert cluster.broker.alive()
    # the largest frame a node sends still passes, and nothing oversize was sequenced
    ack = member.send(room, "y" * 2000)
    assert ack["ok"] and ack["seq"] == 1
    limit = config.BROKER_MAX_FRAME_BYTES
    fits = cluster.broker_socket(zctx, zmq.DEALER, "intake")
    frame = publish_frame(room, "z", rid="fits", nick="member", uid=member.uid)
    fits.send(frame[:-1] + b" " * (limit - len(frame) - 100) + frame[-1:])   # JSON whitespace
    assert fits.poll(5000) and wire.decode(fits.recv())["type"] == "published"
    assert all_healthy(cluster)


def test_a_key_added_to_authorized_nodes_gets_in_at_its_next_handshake(make_cluster, zctx, tmp_path):
    c = make_cluster()
    c.start_broker()
    wait_until(lambda: "listening" in c.broker.log(), 20, "the broker")
    newcomer = keys.create(tmp_path, "node4")
    asker = c.broker_socket(zctx, zmq.DEALER, "snapshot", key=str(newcomer[1]))
    asker.send(wire.encode("snapshot", rid="before", rooms=[]))
    assert frames_within(asker, 2.0) == []
    asker.close(0)
    assert "refused a CURVE handshake" in c.broker.log()        # an unknown key, logged
    shutil.copy(newcomer[0], c.keys_dir / "authorized_nodes")
    # no signal: an unknown key makes the broker read authorized_nodes/ again
    asker = c.broker_socket(zctx, zmq.DEALER, "snapshot", key=str(newcomer[1]))
    asker.send(wire.encode("snapshot", rid="after", rooms=[]))
    assert asker.poll(5000) and wire.decode(asker.recv())["rid"] == "after"
    assert "key of node4 admitted" in c.broker.log()
    (c.keys_dir / "authorized_nodes" / "node4.key").unlink()
    c.broker.signal(signal.SIGHUP)                              # SIGHUP reads it again too
    wait_until(lambda: "reloaded: 3" in c.broker.log(), 10, "the keys reloaded")


def _public_bind_env(c):
    # Every socket on all interfaces (nodes still connect over loopback).
    return {"CHAT_BROKER_%s_BIND" % name.upper(): "tcp://0.0.0.0:%d" % port
            for name, port in c.ports.items()}


@pytest.mark.allow_log_errors(r"ERROR broker broker: cannot bind: no CURVE keys, and tcp://0\.0\.0\.0:")
def test_without_keys_the_broker_refuses_to_bind_beyond_loopback(make_cluster):
    c = make_cluster(curve=False)
    c.env.update(_public_bind_env(c))
    broker = c.start_broker()
    wait_until(lambda: not broker.alive(), 20, "the broker to exit")
    assert broker.popen.returncode == 1
    assert "cannot bind: no CURVE keys" in broker.log() and "CHAT_BROKER_INSECURE=1" in broker.log()


@pytest.mark.allow_log_errors(r"ERROR broker broker\.keys: INSECURE: CHAT_BROKER_INSECURE=1 and no CURVE keys")
def test_chat_broker_insecure_binds_without_keys_and_says_so_every_start(make_cluster, client):
    c = make_cluster(curve=False)
    c.env.update(_public_bind_env(c), CHAT_BROKER_INSECURE="1")
    for start in (1, 2):
        c.start_broker()
        wait_until(lambda: c.broker.log().count("listening") == start, 20, "the broker")
        c.broker.stop()
    assert c.broker.log().count(" ERROR broker broker.keys: INSECURE") == 2
    c.start_broker()
    c.start_node("node1")
    room = new_room()
    plain = client(c.url("node1"))
    plain.join(room)
    assert plain.send(room, "over plain sockets")["ok"]


def test_a_node_key_cannot_speak_for_another_node(make_cluster, client, zctx):
    """node2's own key (as a node2 taken over would hold it) saying goodbye as node1,
    reporting node1's presence and publishing as node1: each refused and logged."""
    c = make_cluster()
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    room, member = room_with_member(c, client, "node1", "owned")
    watcher = client(c.url("node2"), name="watcher")
    watcher.uid = watcher.join(room)["uid"]
    members = lambda: watcher.call("members", {"room": room})["members"]   # noqa: E731
    wait_until(lambda: "member" in members(), 10, "node1's member listed")
    impostor = c.broker_socket(zctx, zmq.DEALER, "intake", key="node2")
    impostor.send(wire.encode("presence", node="node1", rooms={}, full=True, bye=True))
    impostor.send(wire.encode("presence", node="node1", rooms={room: ["ghost"]}, full=True))
    impostor.send(publish_frame(room, "as node1", rid=7, nick="mallory", node="node1"))
    replies = [wire.decode(frames[0]) for frames in frames_within(impostor, 3.0)]
    assert [r["type"] for r in replies] == ["error", "error", "error"]
    assert all("key of node 'node2' cannot speak for node 'node1'" in r["detail"] for r in replies)
    assert c.broker.log().count("cannot speak for node 'node1'") >= 3        # logged
    time.sleep(1.0)       # absence cannot be awaited: a presence round for a change to show
    assert sorted(members()) == ["member", "watcher"]   # no goodbye, no ghost
    assert member.send(room, "still here")["seq"] == 1     # nothing was sequenced for mallory
    # Under its own name the key is node2's, as always: it speaks as node2's connections.
    impostor.send(publish_frame(room, "hello", rid=8, nick="watcher", node="node2",
                                uid=watcher.uid))
    assert impostor.poll(5000) and wire.decode(impostor.recv())["type"] == "published"


def test_the_archive_requests_are_the_archiver_s_key_s_alone(cluster, client, zctx):
    """A node's key asking for the store's backlog (archive_rooms, archive_events) gets
    ``forbidden`` and reads nothing; its ``archived`` report moves no watermark; the
    archiver's own key is answered."""
    room, author = room_with_member(cluster, client, "node1", "vault")
    assert author.send(room, "for the archive only")["ok"]
    node = cluster.broker_socket(zctx, zmq.DEALER, "snapshot", key="node1")
    node.send(wire.encode("archive_rooms", rid="r", after="", limit=10))
    node.send(wire.encode("archive_events", rid="e", room=room, since=0))
    replies = [wire.decode(frames[0]) for frames in frames_within(node, 3.0)]
    assert [(r["type"], r["error"]) for r in replies] == [("error", "forbidden")] * 2
    assert all("for the archiver's key ('archiver') only, not node 'node1'" in r["detail"]
               for r in replies)
    assert "for the archive only" not in str(replies)
    keys.add_node(cluster.keys_dir, "archiver")     # read at the archiver's first handshake
    archiver = cluster.broker_socket(zctx, zmq.DEALER, "snapshot", key="archiver")
    archiver.send(wire.encode("archive_events", rid="e", room=room, since=0))
    assert archiver.poll(5000)
    reply = wire.decode(archiver.recv())
    assert [m["text"] for m in reply["events"]] == ["for the archive only"]
    # A watermark from a node's key would let the store drop what the archive lacks.
    reporter = cluster.broker_socket(zctx, zmq.DEALER, "intake", key="node1")
    reporter.send(wire.encode("archived", node="node1", rooms={room: [reply["epoch"], 1]}))
    wait_until(lambda: "archived is for the archiver's key" in cluster.broker.log(), 10,
               "the node's archived report refused")
    archiver.send(wire.encode("archive_rooms", rid="r", after="", limit=1000))
    assert archiver.poll(5000)
    assert wire.decode(archiver.recv())["rooms"][room] == [reply["epoch"], 1, 0]


# Refusals beyond the first in one warning interval are counted, not logged.
FORGED_PUBLISHES = 30


def test_a_node_key_cannot_publish_as_a_uid_that_node_did_not_register_in_the_room(
        make_cluster, client, zctx):
    """node2's own key publishing as node1's member (her uid and nick), as a made-up
    uid, as node2's own member in a room it is not in, and without a uid: each refused
    ``not_member`` and logged at most once per interval; nothing sequenced or delivered."""
    c = make_cluster()
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    room, member = room_with_member(c, client, "node1", "forged")
    other = new_room("other")
    watcher = client(c.url("node2"), name="watcher")
    watcher.uid = watcher.join(other)["uid"]
    impostor = c.broker_socket(zctx, zmq.DEALER, "intake", key="node2")
    forged = [(member.uid, "member", room), ("a" + "e" * 20, "member", room),
              (watcher.uid, "watcher", room), (None, "member", room)]
    for i in range(FORGED_PUBLISHES):
        uid, nick, where = forged[i % len(forged)]
        impostor.send(publish_frame(where, "forged %d" % i, rid=i, nick=nick, node="node2",
                                    uid=uid))
    replies = [wire.decode(frames[0]) for frames in frames_within(impostor, 3.0)]
    print("\n%d publishes with node2's key as uids node2 did not register: %s; %d warnings"
          % (FORGED_PUBLISHES, sorted({r.get("error") or r["type"] for r in replies}),
             c.broker.log().count("refused: not one of the connections")))
    assert len(replies) == FORGED_PUBLISHES
    assert all(r["type"] == "error" and r["error"] == "not_member" for r in replies)
    assert 1 <= c.broker.log().count("refused: not one of the connections") <= 2   # rate limited
    assert member.room_messages(room) == []                  # nothing delivered ...
    assert member.send(room, "the first real message")["seq"] == 1    # ... or sequenced


def sent(author, room, cid, deadline_s=20):
    """The ack of ``cid``, resent (same cid) while the broker is away; never ``not_member``."""
    deadline = time.monotonic() + deadline_s
    while True:
        ack = author.send(room, "m %s" % cid, cid=cid, timeout=10)
        if ack.get("ok") or time.monotonic() > deadline:
            return ack
        assert ack.get("error") == "unavailable", ack
        time.sleep(0.1)


def test_honest_members_are_never_refused_across_a_broker_restart_and_a_node_restart(
        make_cluster, client):
    """The restarted broker has no registrations: the nodes register again (a full
    report after the resync, or when refused) and no client hears a refusal; a
    restarted node's connections are registered before their first message."""
    c = make_cluster()
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    room = new_room("honest")
    ann, bob = client(c.url("node1"), name="ann"), client(c.url("node2"), name="bob")
    for who in (ann, bob):
        who.join(room)
    assert sent(ann, room, "a0")["ok"] and sent(bob, room, "b0")["ok"]
    c.broker.kill()
    c.start_broker()                       # the same store: same epoch, an empty registry
    for i in range(1, 6):
        assert sent(ann, room, "a%d" % i)["ok"] and sent(bob, room, "b%d" % i)["ok"]
    node1, port = c.nodes["node1"]
    node1.kill()
    c.start_node("node1", port=port)
    cy = client(c.url("node1"), name="cy")
    cy.join(room)
    assert sent(cy, room, "c0", deadline_s=0)["ok"]           # at once, first time
    assert sent(bob, room, "b6", deadline_s=0)["ok"]
    refusals = [line for p in c.procs for line in p.log().splitlines() if "not_member" in line
                and "not sequenced" in line]
    print("\nbroker restart + node restart: %d publishes refused at the broker before the "
          "node registered again, 0 at a client" % c.broker.log().count("not registered its"))
    assert refusals == []                                      # no client was refused
    assert "refused: not one of the connections" not in c.broker.log()


def make_account(cluster, username):
    made = cluster.manage("createsuperuser", "--noinput", env={
        "DJANGO_SUPERUSER_USERNAME": username, "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        "DJANGO_SUPERUSER_EMAIL": "%s@example.com" % username})
    assert made.returncode == 0, made.stdout + made.stderr


def test_a_node_key_without_the_uid_proof_key_cannot_register_or_speak_as_an_account(
        make_cluster, client, zctx):
    """node2's CURVE key alone (a copied key file, as row 5's attacker held) registering
    and publishing as a real account (alice, logged in on node1), as a guest session's uid
    and as an invented connection: no proof, or a made-up one, registers nobody, so every
    publish is refused ``not_member`` and nothing is sequenced or delivered.  With the uid
    proof key as well (a whole node host) the same frames pass: the proof is what counts."""
    c = make_cluster()
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    make_account(c, "alice")
    http = logged_in(c.url("node1"), "alice")
    room = new_room("proof")
    alice = client(c.url("node1"), name="alice", cookies={"sessionid": http.cookies["sessionid"]})
    alice.uid = alice.join(room)["uid"]
    assert alice.uid.startswith("a")
    impostor = c.broker_socket(zctx, zmq.DEALER, "intake", key="node2")
    forged = [("alice", alice.uid), ("guest", "g" + "1" * 20), ("ghost", "c" + "2" * 20)]
    members = {room: [[nick, uid] for nick, uid in forged]}
    for proofs in ({}, {uid: "0" * uid_proofs.PROOF_HEX_DIGITS for _, uid in forged}):
        impostor.send(wire.encode("presence", node="node2", rooms=members, full=True,
                                  proofs=proofs))
        for i, (nick, uid) in enumerate(forged):
            impostor.send(publish_frame(room, "forged as %s" % nick, rid=i, nick=nick,
                                        node="node2", uid=uid))
        replies = [wire.decode(frames[0]) for frames in frames_within(impostor, 3.0)]
        print("\nnode2's key, %s: %s" % ("proofs made up" if proofs else "no proofs",
                                        [r.get("error") or r["type"] for r in replies]))
        assert [r.get("error") for r in replies] == ["not_member"] * len(forged)
    log = c.broker.log()
    assert log.count("dropped from its report") == 1      # logged, once per interval
    assert alice.room_messages(room) == []                          # nothing delivered ...
    assert alice.send(room, "the first real message")["seq"] == 1   # ... or sequenced
    # The proof key is what node2's key lacked: a whole node host holds it, and passes.
    proof_key = uid_proofs.read_key(c.keys_dir / "uid_proof.secret")
    impostor.send(wire.encode("presence", node="node2", rooms=members, full=True,
                              proofs={uid: uid_proofs.prove(proof_key, uid) for _, uid in forged}))
    impostor.send(publish_frame(room, "as alice", rid=9, nick="alice", node="node2",
                                uid=alice.uid))
    assert impostor.poll(5000) and wire.decode(impostor.recv())["type"] == "published"


def test_honest_accounts_and_guests_on_every_node_are_registered_with_their_proofs(
        make_cluster, client):
    """An account and a guest session on each node send at once, and each sees the
    other's message: no member of a real node was dropped for its proof."""
    c = make_cluster()
    c.start_broker()
    c.start_nodes(("node1", "node2"))
    make_account(c, "bob")
    room = new_room("proven")
    people = []
    for node in ("node1", "node2"):
        bob = logged_in(c.url(node), "bob")
        guest = requests.Session()
        assert guest.get(c.url(node) + "/r/lobby/", timeout=10).status_code == 200
        for name, http in (("bob-" + node, bob), ("guest-" + node, guest)):
            who = client(c.url(node), name=name, cookies={"sessionid": http.cookies["sessionid"]})
            who.join(room, nick=False if http is bob else name)
            people.append(who)
    for i, who in enumerate(people):
        assert who.send(room, "hello %d" % i)["ok"]
    for who in people:
        assert len(who.wait_messages(room, len(people))) == len(people)
    assert "dropped from its report" not in c.broker.log()
