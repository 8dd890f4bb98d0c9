"""Moderation in the Django admin, for staff: reports with their message and one-step
actions, bans (cluster-wide ones are made here), and the read-only moderator log."""
from django.contrib import admin, messages
from django.db import transaction

from . import actions
from .models import Ban, ModAction, Report


class StaffOnly(admin.ModelAdmin):
    """Every staff account moderates (PROTOCOL.md "People"): no per-model permissions."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False   # bans are lifted, reports handled: the record stays


def _each(modeladmin, request, queryset, action, done):
    """Run ``action(user, report)`` on each selected report; say what happened."""
    count = 0
    for report in queryset:
        try:
            action(request.user, report)
            count += 1
        except actions.ActionFailed as exc:
            modeladmin.message_user(request, "report %d: %s" % (report.pk, exc), messages.ERROR)
    if count:
        modeladmin.message_user(request, "%d report(s): %s" % (count, done), messages.SUCCESS)


@admin.register(Report)
class ReportAdmin(StaffOnly):
    list_display = ["created", "state", "room", "seq", "author_nick", "message", "reason",
                    "reporter_uid"]
    list_filter = ["state", "room"]
    search_fields = ["room", "author_nick", "author_uid", "reason"]
    readonly_fields = ["room", "epoch", "seq", "author_uid", "author_nick", "message",
                       "reporter_uid", "reporter", "reason", "created", "state", "handled_by",
                       "handled_at"]
    fields = readonly_fields
    actions = ["delete_message", "ban_author", "delete_and_ban", "dismiss"]

    def has_add_permission(self, request):
        return False   # members report from the chat page

    @admin.display(description="message")
    def message(self, report):
        row = actions.message_of(report)
        if row is None:
            return "(not archived yet)"
        return "(deleted)" if row.deleted else row.text

    @admin.action(description="Delete the message (every member sees it go)")
    def delete_message(self, request, queryset):
        _each(self, request, queryset, actions.delete_message, "message deleted")

    @admin.action(description="Ban its author from the room, for good")
    def ban_author(self, request, queryset):
        _each(self, request, queryset, actions.ban_author, "author banned")

    @admin.action(description="Delete the message and ban its author")
    def delete_and_ban(self, request, queryset):
        def both(user, report):
            actions.delete_message(user, report)
            actions.ban_author(user, report)
        _each(self, request, queryset, both, "message deleted, author banned")

    @admin.action(description="Dismiss (nothing wrong)")
    def dismiss(self, request, queryset):
        _each(self, request, queryset, actions.dismiss, "dismissed")


@admin.register(Ban)
class BanAdmin(StaffOnly):
    list_display = ["created", "uid", "nick", "scope", "until", "by", "reason"]
    list_filter = ["room"]
    search_fields = ["uid", "nick", "room", "reason"]
    fields = ["room", "uid", "nick", "until", "reason"]
    actions = ["lift"]

    @admin.display(description="room")
    def scope(self, ban):
        return ban.room or "every room"

    def save_model(self, request, obj, form, change):
        """A ban saved here is logged and evicted everywhere (a cluster-wide one: every room)."""
        if not change:
            obj.by = request.user
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            actions.banned(request.user, obj, changed=change)
        if not obj.active():
            return   # an ended ban: nobody leaves
        if not actions.evict(obj):
            self.message_user(request, "stored; this process is not a chat node, so the uid's "
                              "connections leave at their node's next resync", messages.WARNING)

    @admin.action(description="Lift the selected bans now")
    def lift(self, request, queryset):
        actions.lift(request.user, queryset)
        self.message_user(request, "%d ban(s) lifted" % queryset.count(), messages.SUCCESS)


@admin.register(ModAction)
class ModActionAdmin(StaffOnly):
    list_display = ["created", "actor_name", "kind", "room", "target_uid", "seq", "detail"]
    list_filter = ["kind"]
    search_fields = ["actor_name", "target_uid", "room", "detail"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
