"""Single questions, each a command of its own (``python -m bench.studies.NAME --help``):
``broker_rooms`` (a broker's start-up with many stored rooms), ``pair_catchup`` (the
failover pair's catch-up with many rooms), ``emit_local`` (a node's local fan-out, three
ways), ``presence_storm`` (what `presence` events cost when many join one room).
"""
