"""Private rooms in the Django admin, for staff: who is in which room, members editable.

Names, owners and direct conversations' pairs are read-only (a room's name is its
stream), and a private room is never deleted here: its conversation would become a
public room's.  A change of members reaches every node at once, as an ``invite`` or a
``remove`` does (the node serving the admin tells the others through the broker).
"""
from django.conf import settings
from django.contrib import admin
from django.db import transaction

from .models import Membership, PrivateRoom


def staff(request):
    """Every staff account moderates (PROTOCOL.md "People"): no per-model permissions."""
    return request.user.is_active and request.user.is_staff


class MembershipInline(admin.TabularInline):
    """Members: staff add and remove them here."""
    model = Membership
    fields = ["user", "added"]
    readonly_fields = ["added"]
    raw_id_fields = ["user"]      # an account id: a select of every account would not scale
    extra = 1

    def has_view_permission(self, request, obj=None):
        return staff(request)

    def has_change_permission(self, request, obj=None):
        return staff(request)

    def has_add_permission(self, request, obj=None):
        return staff(request)

    def has_delete_permission(self, request, obj=None):
        return staff(request)


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

    def has_module_permission(self, request):
        return staff(request)

    def has_view_permission(self, request, obj=None):
        return staff(request)

    def has_change_permission(self, request, obj=None):
        return staff(request)     # the members (the inline); the rest is read-only

    def has_add_permission(self, request, obj=None):
        return False      # rooms are made by ``create`` and ``dm``, with their names checked

    def has_delete_permission(self, request, obj=None):
        return False

    def save_formset(self, request, form, formset, change):
        before = set(form.instance.memberships.values_list("user_id", flat=True))
        super().save_formset(request, form, formset, change)
        after = set(form.instance.memberships.values_list("user_id", flat=True))
        if before != after:
            # the admin's view is one transaction: the nodes must read the change, not before it
            name, removed = form.instance.name, before - after
            transaction.on_commit(lambda: tell_nodes(name, removed=removed))


def tell_nodes(room, removed=()):
    """Every node forgets ``room``'s cached members, and the ``removed`` accounts'
    connections leave it, as the ``remove`` event does.  Outside a node (a management
    command) there is no link: nodes see the change when their cache expires."""
    from chat.running import current_server
    from chat.protocol.identity import account_uid
    sio = current_server()
    if sio is None:
        return
    sio.manager.link.access_changed(room)
    for user_id in removed:
        sio.manager.link.evict(room, account_uid(settings.SECRET_KEY, user_id), "removed")
