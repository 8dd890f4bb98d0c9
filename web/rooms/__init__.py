"""Private rooms and direct conversations: who may read a room that is not public."""
