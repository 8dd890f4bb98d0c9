"""The official Engine.IO and Socket.IO protocol test suites: ours passes every test of a
pinned list (pinned.py) in every attempt, and plain python-socketio's results are
reported beside ours.

Each suite (tests/conformance/<suite>/, copied from upstream, README.md) runs with
mocha's JSON reporter against tests/conformance/server.py: once with ``--server plain``
(stock python-socketio, for the report) and ``OURS_RUNS`` times with ``--server ours``
(a node's patched server), each on a free loopback port, each stopped by pid.  mocha
retries a failed test (``--retries``) so that a run goes on to the end, but an attempt
that failed still counts: a pinned test ours fails in any attempt fails the run,
named, as "lost" (never passed) or "flaky" (passed in some attempts only), but a test
of pinned.py's RACY (racing the server by its own design) fails it only when lost, its
failed attempts reported.  A test plain passes and ours never does fails it too.  ours's server logs are scanned as a
cluster's are, allowing the errors the suites provoke on purpose (SUITE_PROVOKED).
The outcome of every run is left in var/conformance/ for docs/CONFORMANCE.md.
"""
import json
import shutil
import socket
import subprocess

import pytest

from harness.processes import PYTHON, ROOT, Proc, base_env, check_logs, free_port, wait_until

from .pinned import PASSED_BY_OURS, RACY

HERE = ROOT / "tests" / "conformance"
OUT = ROOT / "var" / "conformance"
# The engine.io suite runs ~6 s, the socket.io one ~8 s, with pingTimeout waits inside.
MOCHA_DEADLINE_SECS = 50
SERVER_START_SECS = 20
MOCHA_RETRIES = 2
# Runs of each suite against ours: with each run's retries, enough attempts to see a
# test that fails now and then, in a run time scripts/test can afford on 2 cores.
OURS_RUNS = 2
# The suites send malformed packets, unknown sessions and old protocol versions on
# purpose; python-engineio logs each at ERROR (a bad packet with its traceback).
SUITE_PROVOKED = (
    r"unsupported version of the Socket\.IO or Engine\.IO protocols",
    r"Invalid session",
    r"Invalid transport",
    r"Unexpected HTTP request for session",
    r"(post request|message) handler error",
    r"ValueError: invalid literal for int\(\) with base 10: 'a'",
    r"KeyError: 0",
    r"JSONDecodeError: Expecting value",
)


def start_server(build, suite, log_dir):
    port = free_port()
    proc = Proc("%s-%s" % (build, suite), [PYTHON, str(HERE / "server.py"), "--server", build,
                                           "--suite", suite, "--port", str(port)],
                base_env(), log_dir)
    proc.log_path.unlink(missing_ok=True)       # this run's log only
    proc.start()

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


def run_suite(build, suite, attempt=0):
    """{full test title: (outcome, failed attempts)} of one mocha run against one build;
    outcome is "passed", "failed" or "pending", a retried test's failed attempts count."""
    OUT.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(build, suite, OUT)
    report = OUT / ("%s-%s-%d.json" % (suite, build, attempt))
    try:
        with open(report, "wb") as out:
            done = subprocess.run([str(HERE / suite / "node_modules" / ".bin" / "mocha"), "--reporter", "json",
                                   "--retries", str(MOCHA_RETRIES), "test-suite.js"],
                                  cwd=HERE / suite, env=base_env({"CONFORMANCE_URL": url}), stdout=out,
                                  stderr=subprocess.PIPE, timeout=MOCHA_DEADLINE_SECS)
    finally:
        proc.stop()
    if build == "ours":
        check_logs([proc], SUITE_PROVOKED)
    text = report.read_text()
    if "{" not in text:
        raise AssertionError("mocha wrote no JSON (exit %d): %s" % (done.returncode, done.stderr[-2000:]))
    result = json.loads(text[text.index("{"):])
    outcome = {t["fullTitle"]: ("pending", 0) for t in result["pending"]}
    # a passed test's currentRetry is the number of attempts that failed before it
    outcome.update({t["fullTitle"]: ("passed", t.get("currentRetry", 0)) for t in result["passes"]})
    outcome.update({t["fullTitle"]: ("failed", MOCHA_RETRIES + 1) for t in result["failures"]})
    return outcome


@pytest.mark.timeout((1 + OURS_RUNS) * (MOCHA_DEADLINE_SECS + SERVER_START_SECS + 10))
@pytest.mark.parametrize("suite", ["engine.io", "socket.io"])
def test_ours_passes_every_pinned_test_in_every_attempt(suite, conformance_report):
    if not shutil.which("node") or not (HERE / suite / "node_modules" / ".bin" / "mocha").exists():
        pytest.fail("tests/conformance/%s/node_modules is missing: run scripts/setup --test" % suite)
    plain = run_suite("plain", suite)
    runs = [run_suite("ours", suite, attempt) for attempt in range(OURS_RUNS)]
    titles = sorted(plain)
    assert all(set(run) == set(plain) for run in runs), "the runs ran different tests"
    assert "passed" in {o for o, _ in plain.values()}, \
        "nothing passed against plain python-socketio: the harness is broken"
    # every attempt of every run: a passed test's failed retries, a failed test's all
    attempts = OURS_RUNS * (MOCHA_RETRIES + 1)
    failed = {t: sum(run[t][1] if run[t][0] == "passed" else MOCHA_RETRIES + 1 for run in runs)
              for t in titles}
    tried = {t: sum(run[t][1] + 1 if run[t][0] == "passed" else MOCHA_RETRIES + 1 for run in runs)
             for t in titles}
    passed_every_run = [t for t in titles if all(run[t][0] == "passed" for run in runs)]
    pinned, racy = PASSED_BY_OURS[suite], RACY[suite]
    missing = sorted((pinned | set(racy)) - set(titles))
    lost = sorted(t for t in pinned & set(titles) if not any(run[t][0] == "passed" for run in runs))
    flaky = sorted("%s (failed %d of %d attempts)" % (t, failed[t], tried[t])
                   for t in pinned & set(titles) if t not in lost and t not in racy and failed[t])
    behind = sorted(t for t in titles if plain[t][0] == "passed" and t not in pinned
                    and not any(run[t][0] == "passed" for run in runs))
    gained = sorted(t for t in passed_every_run if t not in pinned and not failed[t])
    conformance_report(suite, [
        "ours: %d of %d pass every attempt (%d runs, up to %d attempts each; %d pinned)"
        % (len([t for t in titles if not failed[t]]), len(titles), OURS_RUNS, MOCHA_RETRIES + 1, len(pinned)),
        "plain python-socketio: %d of %d pass" % (sum(o == "passed" for o, _ in plain.values()), len(titles)),
        *("  plain fails: %s%s" % (t, " (ours too)" if t not in pinned else "")
          for t in titles if plain[t][0] != "passed"),
        *("  racy, ours failed %d of %d attempts: %s (%s)" % (failed[t], tried[t], t, why)
          for t, why in sorted(racy.items()) if t in failed and failed[t]),
        *("  ours now passes every attempt, add it to tests/conformance/pinned.py: %s" % t for t in gained)])
    summary = {"ours_passed": passed_every_run,
               "ours_failed": sorted(t for t in titles if t not in passed_every_run),
               "plain_failed": sorted(t for t in titles if plain[t][0] != "passed"),
               "ours_failed_attempts": {t: "%d of %d" % (failed[t], tried[t]) for t in titles if failed[t]},
               "attempts_per_test": attempts}
    (OUT / ("%s-summary.json" % suite)).write_text(json.dumps(summary, indent=1) + "\n")
    problems = ["pinned but no longer in the suite: %s" % t for t in missing] + \
        ["lost (ours passed it in no run): %s" % t for t in lost] + \
        ["flaky: %s" % t for t in flaky] + \
        ["plain python-socketio passes, ours does not: %s" % t for t in behind]
    assert not problems, "%s suite:\n%s" % (suite, "\n".join(problems))
