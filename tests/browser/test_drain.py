"""A page whose node is drained (scripts/node drain: the balancer's server to drain, the
node told by SIGUSR1) comes back by socket.io-client's own reconnection, through the
balancer to another node, and resumes with since + epoch."""
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from deploy import node
from harness.client import new_room
from harness.cluster import process_errors, start_cluster


class HarnessNodes(node.Cluster):
    """scripts/node's cluster for a harness cluster: its processes are not supervisor's."""

    def __init__(self, cluster, socket, drain_dir):
        super().__init__(config=drain_dir / "supervisord.conf", socket=socket, programs=drain_dir,
                         targets=drain_dir / "nodes.json", drain_dir=drain_dir)
        self.cluster = cluster

    def pid(self, name):
        return self.cluster.nodes[name][0].pid


@pytest.mark.timeout(240)
def test_a_page_on_a_drained_node_reconnects_by_itself_elsewhere_and_misses_nothing(
        tmp_path, two_nodes, capsys):
    with tempfile.TemporaryDirectory(prefix="chat-hap") as folder:   # a unix socket's short path
        socket = Path(folder) / "haproxy.sock"
        drain_dir = tmp_path / "drain"
        cluster = start_cluster(tmp_path / "cluster", env={"BALANCER_STATS_SOCKET": str(socket),
                                                           "CHAT_DRAIN_DIR": str(drain_dir)})
        try:
            room = new_room()
            ann, bob = two_nodes(cluster.balancer_url, room)
            ann.send("before 1")
            bob.send("before 2")
            for page in (ann, bob):
                expect(page.messages).to_have_count(2)
            drained = ann.node_name()

            HarnessNodes(cluster, socket, drain_dir).drain(drained, over_s=1)
            assert "%s is empty" % drained in capsys.readouterr().out
            ann.expect_connected()
            log = ann.status_log()
            assert "reconnecting" in log and log[-1] == "connected", log
            assert ann.node_name() != drained
            assert bob.status_log().count("reconnecting") == 0   # the others notice nothing

            bob.send("after 1")
            ann.send("after 2")
            for page in (ann, bob):
                expect(page.messages).to_have_count(4)
            assert ann.seqs() == bob.seqs() == [1, 2, 3, 4]
            assert sorted(ann.texts()) == ["after 1", "after 2", "before 1", "before 2"]
            expect(ann.page.locator("#outbox li")).to_have_count(0)
        finally:
            cluster.stop()
        errors = process_errors(cluster)
        assert not errors, errors
