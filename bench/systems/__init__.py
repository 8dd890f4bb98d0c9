"""The compared systems: ``servers`` starts each on free loopback ports (ours through
``harness``); the baselines' own code is here too: ``redis_baseline`` (python-socketio +
RedisManager) and ``node_baseline/`` (Node socket.io + its Redis adapter).

Kept free of imports: ``python -m bench.systems.redis_baseline`` imports this package
before it can monkey-patch with gevent.
"""
