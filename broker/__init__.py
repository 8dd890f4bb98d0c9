"""The central ZeroMQ forwarder and sequencer of the chat cluster (never imports Django)."""
