"""The conformance report: ours and plain python-socketio side by side, at the end of the run."""
import pytest

_reports = {}      # suite -> lines


@pytest.fixture
def conformance_report():
    """``report(suite, lines)``: lines printed in the run's summary, failed or not."""
    return _reports.__setitem__


def pytest_terminal_summary(terminalreporter):
    if not _reports:
        return
    terminalreporter.section("protocol conformance: ours and plain python-socketio")
    for suite, lines in sorted(_reports.items()):
        terminalreporter.write_line("%s suite" % suite)
        for line in lines:
            terminalreporter.write_line("  " + line)
