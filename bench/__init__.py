"""Benchmark harness of the chat cluster (issue #6): not part of the product.

scripts/bench drives it (``scripts/bench sanity`` runs ``sanity``, the quick
figure of ours alone); docs/BENCHMARKS.md explains the workloads and the figures.
Modules: ``procstat`` (CPU and memory from /proc), ``loadrun`` (runs
scripts/loadgen.js and samples at its marks), ``measure`` (one loadgen run
and its record), ``systems`` (each system under test on free loopback ports,
ours through the process harness ``harness/``), ``pipe`` (the raw ZeroMQ proxy
and our broker alone), ``workloads``, ``report`` (tables), ``plots`` and
``profile`` (py-spy).
"""
