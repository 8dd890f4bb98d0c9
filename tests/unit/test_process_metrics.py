"""chat.operations.metrics.ProcessMetrics: process metrics without listing every open file per scrape."""
import os
import types

import pytest

from chat.operations.metrics import ProcessMetrics

pytestmark = pytest.mark.timeout(10)


def values(collector):
    return {m.name: m.samples[0].value for m in collector.collect()}


def test_open_fds_is_counted_without_listing_the_fd_directory(monkeypatch):
    files = [open(os.devnull) for _ in range(300)]
    try:
        expected = len(os.listdir("/proc/self/fd")) - 1     # less the listing's own fd
        listed = []
        real = os.listdir
        monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or real(path))
        got = values(ProcessMetrics(registry=None))
    finally:
        for f in files:
            f.close()
    if os.stat("/proc/self/fd").st_size == 0:
        pytest.skip("this kernel gives no fd count as the directory's size (Linux < 6.2)")
    assert got["process_open_fds"] == expected
    assert not any(p.endswith("/fd") for p in listed)
    assert got["process_resident_memory_bytes"] > 0
    assert {"process_cpu_seconds", "process_max_fds", "process_start_time_seconds"} <= set(got)


def test_where_the_kernel_gives_no_fd_count_the_fd_directory_is_listed(monkeypatch):
    """Linux < 6.2 gives the fd directory's size as 0: the library's own count stands."""
    files = [open(os.devnull) for _ in range(300)]
    try:
        expected = len(os.listdir("/proc/self/fd"))         # the library's listing counts its own fd too
        stat, listdir, listed = os.stat, os.listdir, []
        monkeypatch.setattr(os, "stat", lambda path, *a, **kw: types.SimpleNamespace(st_size=0)
                            if str(path).endswith("/fd") else stat(path, *a, **kw))
        monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or listdir(path))
        got = values(ProcessMetrics(registry=None))
    finally:
        for f in files:
            f.close()
    assert got["process_open_fds"] == expected
    assert [p for p in listed if p.endswith("/fd")], "the fd directory was not listed"
