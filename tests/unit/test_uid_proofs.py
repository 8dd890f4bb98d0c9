"""Uid proofs (chatstream/uid_proofs.py): the broker registers a member's uid from a
node's key only with the uid's proof under the uid proof key, checked once per
registration; a node's link sends each connection's proof with its registration.
Over the in-memory twins, each transport's requests coming as with its node's key."""
import logging
import stat

import pytest

from broker import keys
from chat.link import BrokerLink
from chat.link.channel import NotMember
from chat.link.presence import LocalMembers, split_report
from chatstream import config, fastjson, uid_proofs, wire
from harness.twins import MemoryBroker

from .link_twin import Recorder

pytestmark = pytest.mark.timeout(20)

KEY = bytes(range(32))
ANN, GUEST, BOB = "a" + "1" * 20, "g" + "2" * 20, "a" + "3" * 20
HEARTBEAT_MS = 50


# --- the proof ----------------------------------------------------------------------

def test_a_proof_verifies_for_its_uid_and_key_only():
    proof = uid_proofs.prove(KEY, ANN)
    assert len(proof) == uid_proofs.PROOF_HEX_DIGITS and uid_proofs.verify(KEY, ANN, proof)
    assert not uid_proofs.verify(KEY, BOB, proof)                        # another uid
    assert not uid_proofs.verify(bytes(32), ANN, proof)                  # another key
    for bad in (None, 7, [proof], proof[:-1], proof + "0", proof.upper(), "é" * 32, ""):
        assert not uid_proofs.verify(KEY, ANN, bad), bad


def test_the_key_file_is_made_once_private_and_read_back(tmp_path):
    path = tmp_path / "keys" / "uid_proof.secret"
    assert uid_proofs.make_key(path) and not uid_proofs.make_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(uid_proofs.read_key(path)) == uid_proofs.KEY_BYTES
    with pytest.raises(uid_proofs.ProofKeyError, match="scripts/keys init makes it"):
        uid_proofs.read_key(tmp_path / "missing")
    path.write_text("not hex\n")
    with pytest.raises(uid_proofs.ProofKeyError, match="holds no key"):
        uid_proofs.read_key(path)


def test_a_broker_with_curve_keys_needs_the_uid_proof_key(tmp_path):
    keys.init(tmp_path)
    cfg = config.BrokerConfig(keys_dir=str(tmp_path))
    assert keys.uid_proof_key(cfg) == uid_proofs.read_key(tmp_path / "uid_proof.secret")
    (tmp_path / "uid_proof.secret").unlink()
    with pytest.raises(uid_proofs.ProofKeyError, match="every node host and broker host"):
        keys.uid_proof_key(cfg)


# --- the broker's check ---------------------------------------------------------------

def proving_broker():
    broker = MemoryBroker()
    broker.broker.requests.uid_proof_key = KEY
    return broker


def ask(transport, type_, **fields):
    """One intake request over a raw twin transport; its reply body (None: no reply)."""
    transport.send("intake", wire.encode(type_, rid=1, **fields))
    queue = transport.queues["intake"]
    return wire.decode(queue.get()) if queue.qsize() else None


def publish(transport, uid, nick, text="hi"):
    return ask(transport, "publish", room="r", nick=nick, text=text, node="n1",
               cid="c-%s-%s" % (uid, text), uid=uid)


def report(transport, members, proofs=None):
    return ask(transport, "presence", node="n1", rooms={"r": members}, full=True,
               **({} if proofs is None else {"proofs": proofs}))


@pytest.mark.parametrize("proofs", [None, {}, {ANN: "0" * 32}, {ANN: uid_proofs.prove(KEY, BOB)}],
                         ids=["older node", "none", "made up", "another uid's"])
def test_a_member_without_its_uids_proof_is_not_registered_and_cannot_speak(proofs, caplog):
    broker = proving_broker()
    node = broker.transport(peer="n1")
    with caplog.at_level(logging.WARNING, logger="broker"):
        assert report(node, [["ann", ANN]], proofs) is None      # no error: dropped, logged
    assert broker.broker.presence.speaker("n1", "r", ANN) is False
    assert broker.broker.presence.members("r") == []            # not listed either
    assert publish(node, ANN, "ann")["error"] == "not_member"
    assert broker.broker.sequencer.find("r") is None
    assert "dropped from its report" in caplog.text


def test_proven_members_stay_registered_beside_a_dropped_one_and_a_bare_nick_is_dropped():
    broker = proving_broker()
    node = broker.transport(peer="n1")
    proofs = {ANN: uid_proofs.prove(KEY, ANN), GUEST: uid_proofs.prove(KEY, GUEST)}
    report(node, [["ann", ANN], ["guest", GUEST], ["bob", BOB], "old"], proofs)
    assert broker.broker.presence.members("r") == ["ann", "guest"]
    assert publish(node, ANN, "ann")["type"] == "published"
    assert publish(node, GUEST, "guest")["type"] == "published"
    assert publish(node, BOB, "bob")["error"] == "not_member"
    assert publish(node, None, "old")["error"] == "not_member"


def test_a_proof_is_checked_once_per_registration_not_per_message(monkeypatch):
    broker = proving_broker()
    node = broker.transport(peer="n1")
    checks = []
    real = uid_proofs.verify
    monkeypatch.setattr(uid_proofs, "verify", lambda *a: checks.append(a[1]) or real(*a))
    proofs = {ANN: uid_proofs.prove(KEY, ANN)}
    for _ in range(3):                              # the node's periodic whole reports
        report(node, [["ann", ANN]], proofs)
    for i in range(50):
        assert publish(node, ANN, "ann", text="m%d" % i)["type"] == "published"
    assert checks == [ANN]


def test_plain_sockets_carry_no_node_name_so_no_proof_is_asked():
    broker = proving_broker()
    plain = broker.transport()
    ask(plain, "presence", node="n1", rooms={"r": [["ann", ANN]]}, full=True)
    assert publish(plain, ANN, "ann")["type"] == "published"


# --- the node's side ------------------------------------------------------------------

def test_a_report_carries_each_members_proof_and_forgets_it_when_the_uid_leaves():
    sent = []
    local = LocalMembers(lambda type_, **body: sent.append(body), "n1")
    local.joined("r", "ann", ANN, uid_proofs.prove(KEY, ANN))
    local.joined("s", "ann", ANN, uid_proofs.prove(KEY, ANN))
    local.joined("r", "guest", GUEST)                 # no proof (no key): none sent
    local.flush()
    assert sent[-1]["rooms"] == {"r": [["ann", ANN], ["guest", GUEST]], "s": [["ann", ANN]]}
    assert sent[-1]["proofs"] == {ANN: uid_proofs.prove(KEY, ANN)}
    local.left("r", "ann", ANN)
    local.left("s", "ann", ANN)
    local.left("r", "guest", GUEST)
    assert local.proofs == {}


def test_a_report_in_parts_counts_the_proofs_in_each_parts_size():
    proofs = {"a%020x" % i: uid_proofs.prove(KEY, "a%020x" % i) for i in range(300)}
    rooms = {"r": [["n%d" % i, uid] for i, uid in enumerate(proofs)]}
    limit = 4096
    for chunk in split_report(rooms, limit, member_extra_bytes=64):
        frame_proofs = {m[1]: proofs[m[1]] for members in chunk.values() for m in members}
        assert len(fastjson.dumpb({"rooms": chunk, "proofs": frame_proofs})) <= limit + 64


def start(transport, node="n1"):
    link = BrokerLink(transport, node=node, ack_timeout_s=2.0, heartbeat_ms=HEARTBEAT_MS,
                      dead_after_ms=3 * HEARTBEAT_MS)
    link.start(Recorder())
    return link


def test_a_nodes_connections_speak_with_their_proofs_also_after_a_broker_restart():
    broker = proving_broker()
    link = start(broker.transport(peer="n1"))
    broker.heartbeat()
    assert link.wait_synced(2.0)
    link.follow("r")
    link.member_joined("r", "ann", ANN, uid_proofs.prove(KEY, ANN))
    assert link.sequence("r", "ann", "at once", cid="c1", uid=ANN)[0]["uid"] == ANN
    broker = broker.restart()           # an empty registry: the node registers again
    broker.broker.requests.uid_proof_key = KEY
    assert link.sequence("r", "ann", "after", cid="c2", uid=ANN)[0]["text"] == "after"
    link.member_joined("r", "bob", BOB)             # a connection without a proof
    with pytest.raises(NotMember):
        link.sequence("r", "bob", "unproven", cid="c3", uid=BOB)
    link.close()


def test_a_staff_delete_needs_the_staff_uids_proof():
    broker = proving_broker()
    node = broker.transport(peer="n1")
    report(node, [["ann", ANN]], {ANN: uid_proofs.prove(KEY, ANN)})
    message = publish(node, ANN, "ann")["message"]
    epoch = broker.broker.sequencer.rooms["r"].epoch

    def staff_delete(proof, cid):
        return ask(node, "change", room="r", kind="delete", target=message["seq"], epoch=epoch,
                   node="n1", uid=BOB, cid=cid, staff=True,
                   **({} if proof is None else {"proof": proof}))
    assert staff_delete(None, "d1")["error"] == "not_member"
    assert staff_delete("0" * 32, "d2")["error"] == "not_member"
    assert staff_delete(uid_proofs.prove(KEY, BOB), "d3")["type"] == "published"
