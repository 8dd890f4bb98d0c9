"""The archiver over several broker pairs: one :class:`~archive.archiver.Archiver` per
pair in one process, each following its pair's rooms into the one archive.

A room belongs to one pair (chatstream/shards.py), so each room's events come from one
archiver, in its order; the archivers' writers share the database but never a room.
Retention runs in the first one only, so one writer prunes.  ``history`` and ``search``
read the archive as with one pair.
"""
from types import SimpleNamespace

from chatstream import shards


def positions_by_pair(positions, pairs):
    """``{pair: {room: position}}``: the archive's watermarks split by owner pair."""
    split = {pair: {} for pair in pairs}
    for room, position in positions.items():
        split[shards.owner(room, pairs)][room] = position
    return split


class ShardedArchiver:
    """What runarchiver and the archiver's metrics use of an archiver, over one per pair.

    :param archivers: ``{pair name: Archiver}``.
    """

    def __init__(self, archivers):
        self.archivers = dict(archivers)

    def start(self):
        for archiver in self.archivers.values():
            archiver.start()

    def stop(self, flush_timeout_s=5.0):
        for archiver in self.archivers.values():
            archiver.stop(flush_timeout_s)

    @property
    def archived(self):
        return sum(archiver.archived for archiver in self.archivers.values())

    @property
    def lag_events(self):
        return sum(archiver.lag_events for archiver in self.archivers.values())

    def lag_s(self):
        return max(archiver.lag_s() for archiver in self.archivers.values())

    @property
    def streams(self):
        """The streams' figures the metrics read, summed over the pairs (``lost``)."""
        return SimpleNamespace(lost=sum(a.streams.lost for a in self.archivers.values()))
