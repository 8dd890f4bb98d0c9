"""The archive's lag where operators look: scripts/status (and /ops/, the same scrape)
lists the archiver with its lag, and names it when it is down."""
import pytest

from .test_archiver import RATES
from .test_status import _status

pytestmark = pytest.mark.timeout(120)


def test_status_shows_the_archivers_lag_and_names_it_when_down(make_cluster):
    c = make_cluster(env=RATES)
    c.start_broker()
    c.start_nodes(("node1",))
    c.start_archiver()
    done = _status("--targets", c.ops_targets())
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("archiver"))
    assert " archive up " in line and "lag 0 events" in line, line
    c.archiver.kill()
    done = _status("--targets", c.ops_targets())
    assert done.returncode == 1, done.stdout
    assert any(line.startswith("archiver") and "DOWN" in line for line in done.stdout.splitlines())
