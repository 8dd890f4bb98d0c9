"""Running the cluster: HAProxy's runtime API (``balancer``), adding and removing nodes
(``node``, scripts/node), and the configuration of HAProxy and Prometheus beside them."""
