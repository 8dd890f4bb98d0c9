#!/usr/bin/env python
"""Django's command-line utility for the chat node."""
import os
import sys

if __name__ == "__main__":
    if sys.argv[1:2] in (["runnode"], ["runarchiver"]):
        # gevent must patch the standard library before anything imports it.
        from gevent import monkey
        monkey.patch_all()
    if sys.argv[1:2] == ["runnode"]:
        # --name/--host/--port become settings, so they must be in the
        # environment before Django reads the settings (and the log format).
        from chat.management.commands.runnode import options_to_env
        options_to_env(sys.argv[2:], os.environ)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
