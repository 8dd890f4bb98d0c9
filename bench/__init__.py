"""The chat cluster's benchmarks: not part of the product.

``scripts/bench`` (``python -m bench``) runs the suite: every compared system under every
workload, side by side; ``scripts/bench sanity`` the quick figure of ours alone.
docs/BENCHMARKS.md explains the workloads and the figures. Runs write under ``var/bench/``.

- ``cli``: the suite's command line; ``sanity``: one quick run of ours;
- ``systems``: the compared systems on free loopback ports (ours through ``harness``, the
  python-socketio + Redis and Node socket.io baselines);
- ``loadgen``: the load generator (Node), its ``rate`` and ``storm`` modes;
- ``workloads``: fanout, burst, ramp, idle, pipe and profile, and one measured run (``measure``);
- ``report``: tables, merged repeats and plots;
- ``storm``: idle-connection and reconnect storms against a running cluster;
- ``studies``: single questions, each a command of its own (a broker with many rooms, the
  pair's catch-up, local fan-out, presence traffic);
- ``procstat`` and ``machine``: /proc readings, and whether the machine is quiet.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where runs write their results, summaries, plots and logs (git-ignored with var/).
RUNS = ROOT / "var" / "bench"
