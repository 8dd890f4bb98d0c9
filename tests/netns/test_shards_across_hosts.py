"""Rooms over two broker pairs across hosts: broker and broker2 on a and b, broker3 and
broker4 on g and h, node1 + node2 on c, the clients on f (conftest.py), CURVE on.

tests/integration/test_shards.py's tests run here unchanged: rooms of both pairs chat
across nodes, kill -9 of the second pair's active fails that pair over while the first
pair's stream never waits, a pair down makes only its own rooms unavailable."""
import pytest

from tests.integration.test_shards import (  # noqa: F401  (collected here, across hosts)
    test_a_pair_that_is_down_makes_only_its_own_rooms_unavailable,
    test_killing_one_pairs_active_fails_it_over_and_the_other_pair_keeps_acking,
    test_rooms_on_both_pairs_chat_across_nodes)

pytestmark = pytest.mark.timeout(240)
