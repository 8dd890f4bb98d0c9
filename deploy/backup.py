"""scripts/backup DIR: a consistent copy of the cluster's data while it runs.

    scripts/backup var/backups/monday          # the cluster of supervisord.conf
    scripts/backup DIR --store broker=PATH --store broker2=PATH --database PATH

Each SQLite file (every broker's store, the nodes' database with the accounts and
the archive's tables) is copied through SQLite's online backup API: one read
transaction, so the copy is that file as of one commit while the cluster keeps
writing.  A PostgreSQL database (``DATABASE_URL``) is copied by ``pg_dump``.  The
database goes first and the brokers after it: the stores are then at or ahead of
the archive, which catches up from the brokers as it does after any restart.

``DIR/manifest.json`` lists every file with its sha256, and for a store its epoch
and each room's position (epoch, seq) read from the copy; the time and the versions.
DIR is made 0700 and every file in it 0600 (the copies hold accounts and messages).
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from deploy import stores

MANIFEST = "manifest.json"
FORMAT = 1            # the manifest's layout; restore refuses another
HASH_CHUNK_BYTES = 1 << 20


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_sqlite(source, target):
    """``source`` as of one commit into the new file ``target`` (a rollback
    journal, so the copy is one self-contained file)."""
    if not os.path.exists(source):
        raise SystemExit("%s does not exist" % source)
    # mode=rw: never create an empty database where the cluster's should be
    src = sqlite3.connect("file:%s?mode=rw" % source, uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)      # all pages in one step: one read transaction, one commit's state
        dst.execute("PRAGMA journal_mode=DELETE")
        if dst.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise SystemExit("the copy of %s fails SQLite's quick_check" % source)
    finally:
        dst.close()
        src.close()


def store_positions(path):
    """(epoch, {room: [epoch, seq]}) of a broker store's copy."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        rooms = {room: [epoch, seq] for room, epoch, seq in
                 db.execute("SELECT room, epoch, seq FROM rooms ORDER BY room")}
        return (row[0] if row else None), rooms
    finally:
        db.close()


def tables(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    finally:
        db.close()


def pg_dump(url, target):
    done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), url],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit("pg_dump failed: %s" % done.stderr.strip())


def versions(postgres=False):
    found = {"project": importlib.metadata.version("chat-cluster"),
             "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    commit = subprocess.run(["git", "-C", str(stores.ROOT), "rev-parse", "HEAD"],
                            capture_output=True, text=True, timeout=10)
    if commit.returncode == 0:
        found["commit"] = commit.stdout.strip()
    if postgres:
        found["pg_dump"] = subprocess.run(["pg_dump", "--version"], capture_output=True,
                                          text=True, timeout=10).stdout.strip()
    return found


def take(folder, sources):
    """Copy every source (:class:`deploy.stores.Source`) into ``folder``; return the manifest."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit("%s is not empty: a backup goes into a new folder" % folder)
    os.umask(0o077)                  # every file and folder made below: owner only
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ordered = sorted(sources, key=lambda s: s.kind == "store")   # the database first
    files = {}
    for source in ordered:
        target = folder / source.file_name
        partial = target.with_name(target.name + ".partial")
        if source.kind == "postgresql":
            pg_dump(source.location, partial)
        else:
            copy_sqlite(source.location, partial)
        partial.chmod(0o600)
        os.replace(partial, target)
        entry = {"name": source.name, "kind": source.kind, "sha256": sha256(target),
                 "bytes": target.stat().st_size, "copied_at": time.time(),
                 "source": source.location if source.kind != "postgresql" else "DATABASE_URL"}
        if source.kind == "store":
            entry["epoch"], entry["positions"] = store_positions(target)
        elif source.kind == "sqlite":
            entry["tables"] = tables(target)
        files[target.name] = entry
    manifest = {"format": FORMAT, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "unix_time": time.time(), "host": platform.node(),
                "versions": versions(any(s.kind == "postgresql" for s in sources)), "files": files}
    partial = folder / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(partial, folder / MANIFEST)
    return manifest


def add_source_options(parser):
    """The options naming what to copy (or restore to), shared with scripts/restore."""
    parser.add_argument("--config", help="supervisord.conf (default: the repository's): "
                                         "its broker programs' stores")
    parser.add_argument("--store", action="append", metavar="NAME=PATH",
                        help="a broker's store (instead of supervisord.conf's; repeat per broker)")
    parser.add_argument("--database", metavar="PATH",
                        help="the nodes' SQLite database (default CHAT_DATABASE_PATH or "
                             "DATABASE_URL, else var/web.sqlite3)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/backup", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a new (or empty) folder for the copy")
    add_source_options(parser)
    args = parser.parse_args(argv)
    found = stores.sources(args.config or stores.CONFIG, os.environ, stores.named_paths(args.store), args.database)
    manifest = take(args.folder, found)
    for name, entry in sorted(manifest["files"].items()):
        extra = ""
        if entry["kind"] == "store":
            extra = ", epoch %s, %d rooms" % (entry["epoch"], len(entry["positions"]))
        print("%s: %s (%d bytes%s)" % (name, entry["source"], entry["bytes"], extra))
    print("backup of %d files in %s (%s)" % (len(manifest["files"]), args.folder, MANIFEST))
    return 0


if __name__ == "__main__":
    sys.exit(main())
