"""The official Engine.IO and Socket.IO protocol test suites: ours passes whatever plain python-socketio passes.

Each suite (tests/conformance/<suite>/, copied from upstream, README.md) runs with
mocha's JSON reporter against tests/conformance/server.py twice: ``--server ours``
(a node's patched server) and ``--server plain`` (stock python-socketio), each on a
free loopback port, each stopped by pid.  Both runs use ``--retries 2``: a few
tests race the server (e.g. a poll sent right behind the upgrade's "5"), for
either build.  A test plain passed and ours did not is run alone against each
build ``ISOLATED_RUNS`` times: it counts against ours only when ours never passes
it there and plain does at least once (a pass at the edge of a timer is luck for
either build).  The
outcome of every run is kept in var/conformance/ for docs/CONFORMANCE.md.
"""
import json
import re
import shutil
import socket
import subprocess

import pytest

from harness.processes import PYTHON, ROOT, Proc, base_env, free_port, wait_until

HERE = ROOT / "tests" / "conformance"
OUT = ROOT / "var" / "conformance"
# The engine.io suite runs ~6 s, the socket.io one ~8 s, with pingTimeout waits inside.
MOCHA_DEADLINE_SECS = 50
SERVER_START_SECS = 20
MOCHA_RETRIES = 2
ISOLATED_RUNS = 3


def start_server(build, suite, log_dir):
    port = free_port()
    proc = Proc("%s-%s" % (build, suite), [PYTHON, str(HERE / "server.py"), "--server", build,
                                           "--suite", suite, "--port", str(port)],
                base_env(), log_dir).start()

    def listening():
        if not proc.alive():
            raise AssertionError("%s server exited:\n%s" % (build, proc.log()[-3000:]))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(listening, SERVER_START_SECS, "%s %s server on port %d" % (build, suite, port))
    return proc, "http://127.0.0.1:%d" % port


def run_suite(build, suite, only=None):
    """{full test title: "passed" | "failed" | "pending"} of one mocha run against one build.

    :param only: the full title of the one test to run.
    """
    OUT.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(build, suite, OUT)
    report = OUT / ("%s-%s%s.json" % (suite, build, "-isolated" if only else ""))
    grep = ["--grep", "^%s$" % re.escape(only)] if only else []
    try:
        with open(report, "wb") as out:
            done = subprocess.run([str(HERE / suite / "node_modules" / ".bin" / "mocha"), "--reporter", "json",
                                   "--retries", str(MOCHA_RETRIES)] + grep + ["test-suite.js"],
                                  cwd=HERE / suite, env=base_env({"CONFORMANCE_URL": url}), stdout=out,
                                  stderr=subprocess.PIPE, timeout=MOCHA_DEADLINE_SECS)
    finally:
        proc.stop()
    text = report.read_text()
    if "{" not in text:
        raise AssertionError("mocha wrote no JSON (exit %d): %s" % (done.returncode, done.stderr[-2000:]))
    result = json.loads(text[text.index("{"):])
    outcome = {t["fullTitle"]: "pending" for t in result["pending"]}
    outcome.update({t["fullTitle"]: "passed" for t in result["passes"]})
    outcome.update({t["fullTitle"]: "failed" for t in result["failures"]})
    return outcome


@pytest.mark.timeout(2 * MOCHA_DEADLINE_SECS + 4 * SERVER_START_SECS)
@pytest.mark.parametrize("suite", ["engine.io", "socket.io"])
def test_ours_passes_every_test_plain_python_socketio_passes(suite):
    if not shutil.which("node") or not (HERE / suite / "node_modules" / ".bin" / "mocha").exists():
        pytest.fail("tests/conformance/%s/node_modules is missing: run scripts/setup --test" % suite)
    plain = run_suite("plain", suite)
    ours = run_suite("ours", suite)
    assert set(ours) == set(plain), "the two runs ran different tests"
    differ = sorted(t for t, outcome in plain.items()
                    if outcome == "passed" and ours[t] != "passed")
    isolated = {t: {build: sum(run_suite(build, suite, only=t).get(t) == "passed" for _ in range(ISOLATED_RUNS))
                    for build in ("plain", "ours")} for t in differ}
    lost = [t for t in differ if isolated[t]["ours"] == 0 and isolated[t]["plain"] > 0]
    assert not lost, "plain python-socketio passes, ours does not (passes in %d isolated runs: %s): %s" % (
        ISOLATED_RUNS, isolated, lost)
    assert "passed" in plain.values(), "nothing passed against plain python-socketio: the harness is broken"
    summary = {"ours_passed": sorted(t for t, o in ours.items() if o == "passed"),
               "ours_failed": sorted(t for t, o in ours.items() if o == "failed"),
               "plain_failed": sorted(t for t, o in plain.items() if o == "failed"),
               "timing_dependent": isolated}
    (OUT / ("%s-summary.json" % suite)).write_text(json.dumps(summary, indent=1) + "\n")
