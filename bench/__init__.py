"""Benchmark harness of the chat cluster (issue #6): not part of the product.

scripts/bench and scripts/bench-sanity drive it; docs/BENCHMARKS.md explains
the workloads and the figures.  Modules: ``procstat`` (CPU and memory from
/proc), ``loadrun`` (runs scripts/loadgen.js and samples at its marks),
``systems`` (each system under test on free loopback ports), ``pipe`` (the raw
ZeroMQ proxy and our broker alone), ``workloads``, ``report`` (tables),
``plots`` and ``profile`` (py-spy).
"""
