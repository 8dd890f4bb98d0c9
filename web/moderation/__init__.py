"""Moderation: bans, reports and the log of what moderators did (PROTOCOL.md "People")."""
