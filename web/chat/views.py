"""HTTP views: the lobby, a room's page, /healthz and /metrics."""
from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST
from django.shortcuts import render

from .running import current_server
from .operations import metrics
from .protocol import validation


def _context(request, guest_session=False, **extra):
    """What every page shows.  With ``guest_session`` (a page where a guest chats) a guest
    gets a session, so its uid (which the Socket.IO handshake derives from that session's
    cookie, chat/protocol/identity.py) stays the same across reloads, reconnects and nodes; other
    pages store none (a database row per cookieless visit would let anyone fill it)."""
    account = request.user.get_username() if request.user.is_authenticated else None
    if guest_session and account is None and request.session.session_key is None:
        request.session["guest"] = True
    return {"node": settings.CHAT_NODE_NAME, "account": account, **extra}


def lobby(request):
    return render(request, "chat/lobby.html", _context(request))


def room(request, room):
    if not validation.ROOM_RE.fullmatch(room):
        raise Http404("invalid room name")
    partner = None
    if request.user.is_authenticated:
        from rooms.directory import direct_partner
        partner = direct_partner(room, request.user.pk)   # a direct conversation's title
    return render(request, "chat/room.html", _context(request, guest_session=True, room=room,
                                                      direct_with=partner))


def healthz(request):
    sio = current_server()
    up = sio is not None and sio.manager.broker_up
    answer = {"ok": up, "node": settings.CHAT_NODE_NAME, "broker": "up" if up else "down"}
    pair_states = getattr(sio.manager.link, "pair_states", None) if sio is not None else None
    if pair_states:   # several pairs (chat/link/sharded.py): up while one is; each pair's state
        answer["pairs"] = {pair: state.value for pair, state in pair_states().items()}
    return JsonResponse(answer, status=200 if up else 503)


def metrics_view(request):
    """Prometheus text of this node: no database, no session (cheap to scrape every second)."""
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
