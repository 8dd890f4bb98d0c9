"""Private rooms in the Django admin, for staff: who is in which room, members editable.

Names, owners and direct conversations' pairs are read-only (a room's name is its
stream), and a private room is never deleted here: its conversation would become a
public room's.  A change of members reaches every node at once, as an ``invite`` or a
``remove`` does (the node serving the admin tells the others through the broker).
"""
from django.conf import settings
from django.contrib import admin

from .models import Membership, PrivateRoom


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "added"]
    readonly_fields = ["added"]
    raw_id_fields = ["user"]      # an account id: a select of every account would not scale
    extra = 1


@admin.register(PrivateRoom)
class PrivateRoomAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "direct", "created"]
    list_filter = [("pair", admin.EmptyFieldListFilter)]
    search_fields = ["name", "owner__username", "members__username"]
    readonly_fields = ["name", "owner", "pair", "created"]
    inlines = [MembershipInline]

    @admin.display(boolean=True)
    def direct(self, room):
        return room.direct

    def has_add_permission(self, request, obj=None):
        return False      # rooms are made by ``create`` and ``dm``, with their names checked

    def has_delete_permission(self, request, obj=None):
        return False

    def save_formset(self, request, form, formset, change):
        before = set(form.instance.memberships.values_list("user_id", flat=True))
        super().save_formset(request, form, formset, change)
        after = set(form.instance.memberships.values_list("user_id", flat=True))
        if before != after:
            tell_nodes(form.instance.name, removed=before - after)


def tell_nodes(room, removed=()):
    """Every node forgets ``room``'s cached members, and the ``removed`` accounts'
    connections leave it, as the ``remove`` event does.  Outside a node (a management
    command) there is no link: nodes see the change when their cache expires."""
    from chat.assembly import current_server
    from chat.protocol.identity import account_uid
    sio = current_server()
    if sio is None:
        return
    sio.manager.link.access_changed(room)
    for user_id in removed:
        sio.manager.link.evict(room, account_uid(settings.SECRET_KEY, user_id), "removed")
