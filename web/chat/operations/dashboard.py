"""/ops/: the live cluster dashboard, for staff accounts.

The page (chat/ops.html + static chat/ops.js, no build step, no inline script)
listens to ``/ops/stream``: server-sent events, one JSON sample of the cluster
a second (scrape.py scrapes every target's /metrics, cached a second, so
any number of open dashboards cost one scrape per node per second).  A stream
ends after ``STREAM_S`` and the browser's EventSource reconnects by itself:
no greenlet lives forever for a forgotten tab.
"""
import json
import time

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseForbidden, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from .scrape import ClusterSampler

STREAM_S = 300          # one event stream's life; EventSource reconnects after it
PERIOD_S = 1.0          # the dashboard's refresh: live enough to watch a storm

_sampler = None


def sampler():
    """This process's sampler of CHAT_OPS_TARGETS (made on first use)."""
    global _sampler
    if _sampler is None:
        _sampler = ClusterSampler(settings.CHAT_OPS_TARGETS,
                                  timeout_s=settings.CHAT_OPS_SCRAPE_TIMEOUT_S,
                                  cache_s=settings.CHAT_OPS_CACHE_S,
                                  targets_file=settings.CHAT_OPS_TARGETS_FILE)
    return _sampler


def staff_only(view):
    """Anonymous: to the login (then back). Logged in but not staff: 403 (the login
    would send a logged-in user straight back here)."""
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            return HttpResponseForbidden("The dashboard is for staff accounts.")
        return view(request, *args, **kwargs)
    wrapper.__name__ = view.__name__
    return wrapper


@staff_only
def page(request):
    from moderation.actions import open_reports   # the moderation app's, listed for staff
    return render(request, "chat/ops.html", {"node": settings.CHAT_NODE_NAME,
                                             "account": request.user.get_username(),
                                             "period_ms": int(PERIOD_S * 1000),
                                             "reports": open_reports()})


@staff_only
def sample(request):
    """One sample as JSON (the stream's event, for scripts and tests)."""
    return JsonResponse(sampler().sample())


@staff_only
def stream(request):
    def events():
        yield "retry: %d\n\n" % int(PERIOD_S * 1000)
        until = time.monotonic() + STREAM_S
        while time.monotonic() < until:
            yield "data: %s\n\n" % json.dumps(sampler().sample())
            time.sleep(PERIOD_S)   # gevent-patched: only this greenlet waits
    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
