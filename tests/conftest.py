"""Suite-wide hooks: the ``allow_log_errors`` marker, and a summary of skipped tests that
turns the run red where every test can run.

scripts/test sets CHAT_TEST_NO_SKIPS=1: on the machine it prepares (root, Debian, the
packages of ``scripts/setup --test``) every test can run, so a skip whose reason no
pattern of ALLOWED_SKIPS matches fails the session, listing each with its reason.
"""
import os
import re

NO_SKIPS_ENV = "CHAT_TEST_NO_SKIPS"
# Skips that are right even on a machine scripts/setup --test prepared: reason pattern -> why.
ALLOWED_SKIPS = {
    r"Linux < 6\.2": "the fd count as the directory's size is a kernel feature; the fallback "
                     "has a test of its own",
}

_skips = []        # (nodeid, reason) in the order they happened


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_log_errors(*patterns): tracebacks or ERROR lines matching a pattern "
        "(re.search) that the test provokes on purpose; any other one in a process log fails it")


def _record(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skips.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_runtest_logreport(report):
    _record(report)


def pytest_collectreport(report):
    _record(report)


def forbidden_skips():
    """The skips of this session that no ALLOWED_SKIPS pattern matches."""
    return [(nodeid, reason) for nodeid, reason in _skips
            if not any(re.search(pattern, reason) for pattern in ALLOWED_SKIPS)]


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get(NO_SKIPS_ENV) == "1" and forbidden_skips() and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _skips:
        return
    strict = os.environ.get(NO_SKIPS_ENV) == "1"
    forbidden = forbidden_skips()
    terminalreporter.section("skipped tests (%d)" % len(_skips))
    for nodeid, reason in _skips:
        mark = "NOT ALLOWED" if strict and (nodeid, reason) in forbidden else "skipped"
        terminalreporter.write_line("%s %s: %s" % (mark, nodeid, reason))
    if strict and forbidden:
        terminalreporter.write_line(
            "%s=1: this machine can run every test, so %d skip(s) fail the run; install what "
            "the reason names (scripts/setup --test as root) or, if no machine set up by it can "
            "run the test, add its reason to ALLOWED_SKIPS in tests/conftest.py saying why"
            % (NO_SKIPS_ENV, len(forbidden)), red=True, bold=True)
