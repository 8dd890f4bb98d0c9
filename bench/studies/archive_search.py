"""Search and history pages over a big archive, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.studies.archive_search --messages 1000000 --rooms 1000 --db both

Fills a fresh archive (SQLite in a temporary folder; PostgreSQL from Debian's binaries,
initdb'd in a temporary folder on a free loopback port, as the tests do) through the
archive's own writer, so the search index is built as the archiver builds it: ``--messages``
messages over ``--rooms`` rooms, texts of 6-16 words drawn from a Zipf-like vocabulary (a few
words in most messages, most words rare).  Then times, one after another:

- ``search``: ``--queries`` queries of one or two words, frequent, middling and rare alike,
  half over every room (the node's "every room you may read": all of them) and half in one room;
- ``history``: the same number of pages of 50, at random points of random rooms.

Reports p50, p99 and max per database in milliseconds.  Everything lives in temporary
folders that are removed (``--sqlite-file`` keeps the SQLite archive, and a run on a file
that already holds messages measures it without filling); the PostgreSQL server is stopped
by pid.
"""
import argparse
import os
import random
import sys
import tempfile
import time

WORDS = 5000            # vocabulary size; word k is drawn with weight 1/(k+1)
BATCH = 5000            # events per writer transaction while filling
EPOCH = "bench-epoch"


def vocabulary(size=WORDS, seed=7):
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words, key=lambda w: (len(w), w))


def texts(rng, words, weights, count):
    for _ in range(count):
        yield " ".join(rng.choices(words, weights, k=rng.randint(6, 16)))


def configure(aliases):
    import django
    from django.conf import settings
    settings.configure(INSTALLED_APPS=["archive"], DATABASES=aliases, USE_TZ=True,
                       DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
    django.setup()


def fill(using, messages, rooms, words, weights, seed=11):
    """Write ``messages`` over ``rooms`` through archive.writer; returns rows/s."""
    from archive.writer import write
    rng = random.Random(seed)
    seqs = [0] * rooms
    started = time.perf_counter()
    batch, ts = [], 1_700_000_000_000
    for text in texts(rng, words, weights, messages):
        r = rng.randrange(rooms)
        seqs[r] += 1
        ts += 1
        batch.append((EPOCH, {"id": "m%d-%d" % (r, seqs[r]), "seq": seqs[r], "room": "room-%d" % r,
                              "nick": "n%d" % rng.randrange(500), "text": text, "ts": ts,
                              "node": "node1", "uid": "u%d" % rng.randrange(500)}))
        if len(batch) == BATCH:
            write(batch, using=using)
            batch = []
    write(batch, using=using)
    return messages / (time.perf_counter() - started), seqs


def percentiles(samples_ms):
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]   # noqa: E731
    return {"p50": round(pick(0.50), 2), "p99": round(pick(0.99), 2), "max": round(ordered[-1], 2)}


def measure(using, rooms, seqs, words, queries, seed=13):
    from archive.reader import ArchiveReader
    from archive.search import ArchiveSearch
    rng = random.Random(seed)
    search, reader = ArchiveSearch(using), ArchiveReader(using)
    names = ["room-%d" % r for r in range(rooms)]
    # Frequent (the top 20), middling (rank 100-1000) and rare (the tail) words alike.
    bands = [words[:20], words[100:1000], words[1000:]]
    search_ms, hits = [], 0
    for i in range(queries):
        q = " ".join(rng.choice(rng.choice(bands)) for _ in range(rng.randint(1, 2)))
        scope = search.rooms() if i % 2 == 0 else [rng.choice(names)]
        t0 = time.perf_counter()
        found = search.search(q, scope)
        search_ms.append((time.perf_counter() - t0) * 1000)
        hits += len(found)
    history_ms = []
    for _ in range(queries):
        r = rng.randrange(rooms)
        newest = seqs[r]
        view = {"epoch": EPOCH, "seq": newest, "history": []}
        t0 = time.perf_counter()
        reader.page("room-%d" % r, view, before=rng.randint(1, newest + 1), limit=50)
        history_ms.append((time.perf_counter() - t0) * 1000)
    return {"search_ms": percentiles(search_ms), "history_ms": percentiles(history_ms),
            "hits_per_search": round(hits / queries, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--sqlite-file", help="the SQLite archive to fill and keep, or to measure again")
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "web"))
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    words = vocabulary()
    weights = [1.0 / (k + 1) for k in range(len(words))]
    with tempfile.TemporaryDirectory(prefix="archive-search-") as tmp:
        aliases, server = {}, None
        if args.db in ("sqlite", "both"):
            aliases["sqlite"] = {"ENGINE": "django.db.backends.sqlite3",
                                 "NAME": args.sqlite_file or os.path.join(tmp, "archive.sqlite3")}
        if args.db in ("postgresql", "both"):
            import dj_database_url
            from tests.integration.postgres import PostgresServer
            server = PostgresServer()
            aliases["postgresql"] = dj_database_url.parse(server.url)
        aliases["default"] = next(iter(aliases.values()))
        configure(aliases)
        from django.core.management import call_command
        try:
            for using in [a for a in aliases if a != "default"]:
                call_command("migrate", "archive", database=using, verbosity=0)
                from archive.models import Room
                held = dict(Room.objects.using(using).values_list("name", "seq"))
                if held:
                    rate, seqs = 0, [held.get("room-%d" % r, 0) for r in range(args.rooms)]
                else:
                    rate, seqs = fill(using, args.messages, args.rooms, words, weights)
                if using == "postgresql":
                    from django.db import connections
                    with connections[using].cursor() as cursor:
                        cursor.execute("ANALYZE")
                figures = measure(using, args.rooms, seqs, words, args.queries)
                print("%s: %d messages over %d rooms, filled at %d rows/s; search %s; "
                      "history page %s; %.1f hits per search"
                      % (using, args.messages, args.rooms, rate, figures["search_ms"],
                         figures["history_ms"], figures["hits_per_search"]), flush=True)
        finally:
            from django.db import connections
            connections.close_all()
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
