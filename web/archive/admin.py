"""The archive in the Django admin: read-only for staff, searchable by room, nick and text.

Changing the conversation is a sequenced room event (every node must see it), never an
edit of these rows, so the admin neither adds, changes nor deletes them.  Its one action,
"delete for everyone", has this node's broker link sequence a ``delete`` of each chosen
message, as a moderator's would be; the rows change once the archiver writes it.
"""
from django.conf import settings
from django.contrib import admin, messages

from chat.protocol.conversation import delete_as_staff
from chat.protocol.identity import account_uid
from chat.protocol.validation import ContractError
from .models import Edit, Room, RoomEvent

# Messages one action deletes at most: each is a round trip to the broker within the
# admin's request.
DELETE_MAX = 100


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EditInline(admin.TabularInline):
    model = Edit
    fields = readonly_fields = ["edit_seq", "ts", "text"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Room)
class RoomAdmin(ReadOnly):
    list_display = ["name", "epoch", "seq"]
    search_fields = ["name"]


@admin.register(RoomEvent)
class RoomEventAdmin(ReadOnly):
    list_display = ["room", "seq", "kind", "nick", "text", "ts", "node", "edited_at", "deleted"]
    list_filter = ["kind", "deleted"]
    list_select_related = ["room"]
    search_fields = ["room__name", "nick", "text"]
    inlines = [EditInline]
    actions = ["delete_for_everyone"]

    @admin.action(description="Delete the selected messages for everyone")
    def delete_for_everyone(self, request, queryset):
        chosen = list(queryset.filter(kind=RoomEvent.Kind.MESSAGE, deleted=False)
                      .select_related("room")[:DELETE_MAX + 1])
        if len(chosen) > DELETE_MAX:
            self.message_user(request, "At most %d messages at a time; choose fewer."
                              % DELETE_MAX, messages.WARNING)
            return
        uid = account_uid(settings.SECRET_KEY, request.user.pk)
        done = []
        for event in chosen:
            try:
                done.append(delete_as_staff(event.room.name, event.epoch, event.seq, uid))
            except (ContractError, RuntimeError) as exc:
                self.message_user(request, "%s #%d not deleted: %s" % (
                    event.room.name, event.seq, getattr(exc, "detail", exc)), messages.WARNING)
        if done:
            self.message_user(request, "%d message(s) deleted for everyone; the archive shows "
                              "it once the archiver has written the delete." % len(done))
