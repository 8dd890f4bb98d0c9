"""Private rooms and direct conversations in the database, as the events change them.

Each method is one event's database work (``dm``, ``create``, ``invite``, ``remove``) and
refuses with the contract's errors (chat.protocol.validation.ContractError).  Telling
the nodes is the caller's part (chat/protocol/private_rooms.py).
"""
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from chat.protocol.validation import ContractError
from chatstream import config, rules

from . import names
from .access import closing_connections
from .models import Membership, PrivateRoom, pair_key

# A direct conversation's name is tried this many times (names.direct_name's attempt)
# before giving up: each try is an unguessable name, so a second is already a fluke.
DIRECT_NAME_ATTEMPTS = 4


class Directory:
    """The accounts' private rooms.

    :param secret_key: the key of direct conversations' names (rooms/names.py).
    :param in_use: ``in_use(room) -> bool``: some room (public) already has this name:
        it has messages or members (the caller asks the broker and the archive).
    :param max_members: members of one private room, owner included.
    :param rooms_per_account: private rooms one account may own.
    """

    def __init__(self, secret_key, in_use=lambda room: False,
                 max_members=config.PRIVATE_ROOM_MAX_MEMBERS,
                 rooms_per_account=config.PRIVATE_ROOMS_PER_ACCOUNT):
        self.secret_key = secret_key
        self.in_use = in_use
        self.max_members = max_members
        self.rooms_per_account = rooms_per_account

    def accounts(self, usernames):
        """username -> user for ``usernames`` (any spelling login accepts), or not_found."""
        keys = {rules.nick_key(name): name for name in usernames}
        with closing_connections():
            found = {user.nick_key: user
                     for user in get_user_model().objects.filter(nick_key__in=list(keys))}
        unknown = [name for key, name in keys.items() if key not in found]
        if unknown:
            raise ContractError("not_found", "no account is named %s; check the username"
                                % ", ".join(sorted(unknown)))
        return {name: found[key] for key, name in keys.items()}

    def open_direct(self, user_id, username):
        """``(room, other account, made now)``: the direct conversation of account
        ``user_id`` and ``username``'s, made on first use (both members, no owner); the
        same name from either side."""
        other = self.accounts([username])[username]
        if other.pk == user_id:
            raise ContractError("invalid_payload", "a direct conversation is with another "
                                "account; name someone else in 'to'")
        pair = pair_key(user_id, other.pk)
        with closing_connections():
            existing = PrivateRoom.objects.filter(pair=pair).values_list("name", flat=True).first()
        if existing is not None:
            return existing, other, False
        for attempt in range(DIRECT_NAME_ATTEMPTS):
            name = names.direct_name(self.secret_key, pair, attempt)
            if self.in_use(name):
                continue
            try:
                with closing_connections(), transaction.atomic():
                    room = PrivateRoom.objects.create(name=name, owner=None, pair=pair)
                    Membership.objects.bulk_create([Membership(room=room, user_id=user_id),
                                                    Membership(room=room, user=other)])
                return name, other, True
            except IntegrityError:
                # the other side started it at the same moment: theirs is the one
                with closing_connections():
                    existing = PrivateRoom.objects.filter(pair=pair).values_list(
                        "name", flat=True).first()
                if existing is not None:
                    return existing, other, False
        raise ContractError("unavailable", "no free name for this conversation; try again")

    def create(self, owner_id, room, usernames):
        """A private room ``room`` owned by ``owner_id`` with ``usernames`` as members."""
        if names.reserved(room):
            raise ContractError("forbidden", "room names beginning with %s are direct "
                                "conversations'; choose another name" % names.DIRECT_PREFIX)
        members = self.accounts(usernames)
        ids = {owner_id} | {user.pk for user in members.values()}
        if len(ids) > self.max_members:
            raise ContractError("forbidden", "a private room has at most %d members"
                                % self.max_members)
        with closing_connections():
            owned = PrivateRoom.objects.filter(owner_id=owner_id, pair__isnull=True).count()
        if owned >= self.rooms_per_account:
            raise ContractError("too_many_rooms", "an account owns at most %d private rooms"
                                % self.rooms_per_account)
        if self.in_use(room):
            raise ContractError("forbidden", "room %s is in use already; choose another name"
                                % room)
        try:
            with closing_connections(), transaction.atomic():
                made = PrivateRoom.objects.create(name=room, owner_id=owner_id)
                Membership.objects.bulk_create([Membership(room=made, user_id=user_id)
                                                for user_id in sorted(ids)])
        except IntegrityError:
            raise ContractError("forbidden", "room %s, or one that looks like it, is in use "
                                "already; choose another name" % room) from None

    def invite(self, room, username):
        """Add ``username`` to private room ``room`` (the caller checked who asks)."""
        user = self.accounts([username])[username]
        with closing_connections(), transaction.atomic():
            made = self._changeable(room)
            if made.memberships.filter(user=user).exists():
                return user
            if made.memberships.count() >= self.max_members:
                raise ContractError("forbidden", "room %s has its %d members already"
                                    % (room, self.max_members))
            Membership.objects.create(room=made, user=user)
        return user

    def remove(self, room, username):
        """Take ``username`` out of private room ``room``; returns the account."""
        user = self.accounts([username])[username]
        with closing_connections(), transaction.atomic():
            made = self._changeable(room)
            if made.owner_id == user.pk:
                raise ContractError("forbidden", "the owner of %s cannot be removed from it"
                                    % room)
            made.memberships.filter(user=user).delete()
        return user

    def _changeable(self, room):
        made = PrivateRoom.objects.select_for_update().filter(name=room).first()
        if made is None or made.direct:
            raise ContractError("forbidden", "only a private room's owner or staff invite "
                                "and remove, and a direct conversation's members never change")
        return made

    def of_account(self, user_id):
        """The account's private rooms and direct conversations, newest first, for the lobby."""
        with closing_connections():
            rooms = list(PrivateRoom.objects.filter(memberships__user_id=user_id)
                         .select_related("owner").prefetch_related("members")
                         .order_by("-created"))
            return [{"room": room.name, "direct": room.direct,
                     "owner": room.owner.get_username() if room.owner else None,
                     "members": sorted(user.get_username() for user in room.members.all()),
                     "with": next((user.get_username() for user in room.members.all()
                                   if user.pk != user_id), None) if room.direct else None}
                    for room in rooms]


def direct_partner(room, user_id):
    """The other account's username when ``room`` is a direct conversation of ``user_id``,
    else None (the room page's title; nothing is said to anyone else)."""
    if not names.reserved(room):
        return None
    found = (get_user_model().objects.filter(memberships__room__name=room,
                                             memberships__room__pair__isnull=False,
                                             memberships__room__memberships__user_id=user_id)
             .exclude(pk=user_id).values_list("username", flat=True).first())
    return found
