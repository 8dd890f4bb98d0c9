"""The Socket.IO server this process runs as a node, for code that Django calls outside
a Socket.IO event (the admin's actions, views, a logout's revocation): they reach the
node's broker link through it.  None in a process that is no node (tests, manage.py).
"""
_sio = None


def current_server():
    """The Socket.IO server of this process, or None outside a node (e.g. tests)."""
    return _sio


def set_server(sio):
    """Called once, by chat.assembly, when the node's server is built."""
    global _sio
    _sio = sio
