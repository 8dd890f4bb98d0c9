"""The signup form: Django's UserCreationForm for our user, with nicks compared by key."""
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from chatstream import rules


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def clean_username(self):
        username = super().clean_username()   # None when Django found it taken already
        if username and get_user_model().objects.filter(nick_key=rules.nick_key(username)).exists():
            self.add_error("username", "That name is taken (names are compared without "
                                       "case and width).")
        return username
