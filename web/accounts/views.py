"""Signup and login, throttled (accounts/throttle.py); logout is Django's own view."""
from django.conf import settings
from django.contrib.auth import login, views as auth_views
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import CreateView

from . import throttle
from .forms import SignupForm

TOO_MANY_FROM_ADDRESS = ("Too many login and signup attempts from your address: "
                         "try again in %d minutes.")
TOO_MANY_FOR_USERNAME = "Too many failed logins for this username: try again in %d minutes."


def safe_next(request, default=settings.LOGIN_REDIRECT_URL):
    """The ``next`` of the request when it points at this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return default


class Throttled:
    """A form view whose POSTs count against the client address's limit, refused
    (HTTP 429, the form again with the reason) beyond it, before any password is hashed."""

    def refusal(self, request):
        """The reason to refuse this POST, or None; counts it."""
        attempts = throttle.count(throttle.address_key(request), add=1,
                                  window_s=settings.CHAT_AUTH_WINDOW_S)
        if attempts > settings.CHAT_AUTH_ATTEMPTS_PER_ADDRESS:
            return TOO_MANY_FROM_ADDRESS % self.minutes()
        return None

    @staticmethod
    def minutes():
        return max(1, round(settings.CHAT_AUTH_WINDOW_S / 60))

    def refuse(self, reason):
        self.object = None     # CreateView's context reads it
        form = self.get_form_class()(**self.unbound_form_kwargs())
        return self.render_to_response(self.get_context_data(form=form, refusal=reason), status=429)

    def unbound_form_kwargs(self):
        return {"initial": {"username": self.request.POST.get("username", "")[:150]}}

    def post(self, request, *args, **kwargs):
        reason = self.refusal(request)
        if reason:
            return self.refuse(reason)
        return super().post(request, *args, **kwargs)


class LoginView(Throttled, auth_views.LoginView):
    """Django's LoginView; a username with too many failed logins is refused as well."""
    redirect_authenticated_user = True

    def refusal(self, request):
        reason = super().refusal(request)
        if reason is None:
            failures = throttle.count(throttle.username_key(request.POST.get("username", "")),
                                      window_s=settings.CHAT_AUTH_WINDOW_S)
            if failures >= settings.CHAT_AUTH_FAILURES_PER_USERNAME:
                reason = TOO_MANY_FOR_USERNAME % self.minutes()
        return reason

    def unbound_form_kwargs(self):
        return {"request": self.request, **super().unbound_form_kwargs()}

    def form_invalid(self, form):
        throttle.count(throttle.username_key(self.request.POST.get("username", "")), add=1,
                       window_s=settings.CHAT_AUTH_WINDOW_S)
        return super().form_invalid(form)


class SignupView(Throttled, CreateView):
    """Make an account and log it in at once."""
    form_class = SignupForm
    template_name = "accounts/signup.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(next=safe_next(self.request, ""), **kwargs)

    def form_valid(self, form):
        user = form.save()
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(safe_next(self.request))
