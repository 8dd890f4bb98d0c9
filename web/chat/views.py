"""HTTP views: the lobby, a room's page and /healthz."""
from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import render

from . import validation
from .node import current_server


def _context(**extra):
    return {"node": settings.CHAT_NODE_NAME, **extra}


def lobby(request):
    return render(request, "chat/lobby.html", _context())


def room(request, room):
    if not validation.ROOM_RE.fullmatch(room):
        raise Http404("invalid room name")
    return render(request, "chat/room.html", _context(room=room))


def healthz(request):
    sio = current_server()
    up = sio is not None and sio.manager.broker_up
    return JsonResponse({"ok": up, "node": settings.CHAT_NODE_NAME,
                         "broker": "up" if up else "down"}, status=200 if up else 503)
