"""Operating a node and the cluster: metrics, the /ops/ dashboard, ``scripts/status``,
the garbage collector's watch and the node's logging filters."""
