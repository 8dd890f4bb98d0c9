"""The signup form: Django's UserCreationForm for our user, names compared by how they look."""
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from chatstream import rules

from . import names


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def clean_username(self):
        username = super().clean_username()   # None when Django found it taken already
        if username and self.looks_taken(username):
            # One message whether the name is taken or only looks like a taken one.
            self.add_error("username", "That name is taken (names are compared without "
                                       "case and width, and by how they look).")
        return username

    @staticmethod
    def looks_taken(username):
        users = get_user_model().objects
        return (users.filter(nick_key=rules.nick_key(username)).exists()
                or users.filter(nick_skeleton=names.skeleton(username)).exists())
