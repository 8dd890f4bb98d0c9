"""Presence reports in parts: the node splits them, the broker puts them together."""
import pytest

from broker.reports import ReportAssembler, ReportError
from chat.link.presence import split_report
from chatstream import fastjson


def test_split_report_keeps_every_nick_in_chunks_under_the_budget():
    rooms = {"r%d" % i: ["nick-%d-%d" % (i, j) for j in range(i * 7)] for i in range(60)}
    chunks = list(split_report(rooms, 500))
    assert all(len(fastjson.dumpb(chunk)) <= 500 for chunk in chunks)
    joined = {}
    for chunk in chunks:
        for room, nicks in chunk.items():
            joined.setdefault(room, []).extend(nicks)
    assert joined == rooms                 # empty rooms included: they mean "nobody"


def test_a_small_report_is_one_chunk_and_an_empty_one_too():
    assert list(split_report({"r": ["a", "b"]}, 500)) == [{"r": ["a", "b"]}]
    assert list(split_report({}, 500)) == [{}]


def test_parts_count_only_once_the_last_is_in():
    parts = ReportAssembler(max_rooms=10, max_nicks=10, max_nodes=2)
    assert parts.add("n1", {"a": ["x"]}, 0, more=True) is None
    assert parts.add("n1", {"a": ["y"], "b": []}, 1, more=True) is None
    assert parts.add("n1", {"c": ["z"]}, 2, more=False) == {"a": ["x", "y"], "b": [], "c": ["z"]}
    assert parts.pending == {}
    assert parts.add("n1", {"a": ["x"]}, 0, more=False) == {"a": ["x"]}


def test_a_part_out_of_order_or_over_a_cap_drops_the_report():
    parts = ReportAssembler(max_rooms=2, max_nicks=3, max_nodes=1)
    with pytest.raises(ReportError, match="does not continue"):
        parts.add("n1", {"a": ["x"]}, 1, more=False)
    parts.add("n1", {"a": ["x"]}, 0, more=True)
    with pytest.raises(ReportError, match="does not continue"):
        parts.add("n1", {"a": ["y"]}, 2, more=False)
    assert parts.pending == {}
    parts.add("n1", {"a": ["x", "y"]}, 0, more=True)
    with pytest.raises(ReportError, match="nicks"):
        parts.add("n1", {"a": ["z", "w"]}, 1, more=True)
    parts.add("n1", {"a": []}, 0, more=True)
    with pytest.raises(ReportError, match="rooms"):
        parts.add("n1", {"b": [], "c": []}, 1, more=True)
    parts.add("n1", {"a": []}, 0, more=True)
    with pytest.raises(ReportError, match="pending"):
        parts.add("n2", {"a": []}, 0, more=True)
