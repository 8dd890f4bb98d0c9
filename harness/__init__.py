"""Real processes on free loopback ports, shared by the tests, the benchmarks and the
screenshots: not part of the product.

- ``processes``: free ports, a child process in its own process group, polling;
- ``cluster``: a broker, nodes and HAProxy (``Cluster``, ``start_cluster``);
- ``client``: a python-socketio chat client that records what it receives.

Everything started here is stopped by pid (its own process group), never by name.
"""
