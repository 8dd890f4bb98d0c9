"""The archive in the Django admin: read-only for staff, searchable by room, nick and text.

Changing the conversation is a sequenced room event (every node must see it), never an
edit of these rows, so the admin neither adds, changes nor deletes them.
"""
from django.contrib import admin

from .models import Edit, Room, RoomEvent


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
