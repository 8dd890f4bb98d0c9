"""Idle-connection and reconnect storms against a running cluster: ``python -m bench.storm``.

``generators`` (the load generator in storm mode, one per node), ``watch`` (the nodes'
health, metrics and a probe's acks while it runs), ``probe`` (that probe client, a process
of its own), ``cpu`` (every process's CPU per phase).
"""
