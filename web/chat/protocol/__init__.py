"""The client contract of PROTOCOL.md on a node: the Socket.IO event handlers, the
rules their payloads must meet, per-connection rate limits and who a connection is."""
