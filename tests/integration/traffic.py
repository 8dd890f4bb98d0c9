"""Traffic for the observability tests: messages from node1 seen on node2."""
from harness.client import new_room


def send_across(cluster, client, count):
    """``count`` messages by ann on node1, all received by bob on node2; returns (room, ann, bob)."""
    room = new_room()
    ann, bob = client(cluster.url("node1"), name="a"), client(cluster.url("node2"), name="b")
    ann.join(room, "ann")
    bob.join(room, "bob")
    for i in range(count):
        ann.send(room, "message %d" % i)
    bob.wait_messages(room, count)
    return room, ann, bob
