"""Signup; login and logout are Django's own views (accounts/urls.py)."""
from django.conf import settings
from django.contrib.auth import login
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import CreateView

from .forms import SignupForm


def safe_next(request, default=settings.LOGIN_REDIRECT_URL):
    """The ``next`` of the request when it points at this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return default


class SignupView(CreateView):
    """Make an account and log it in at once."""
    form_class = SignupForm
    template_name = "accounts/signup.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(next=safe_next(self.request, ""), **kwargs)

    def form_valid(self, form):
        user = form.save()
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(safe_next(self.request))
