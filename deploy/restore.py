"""scripts/restore DIR: put a backup (scripts/backup) back on a stopped cluster.

    scripts/restore var/backups/monday         # into the cluster of supervisord.conf
    scripts/restore DIR --store broker=PATH --store broker2=PATH --database PATH

First every file's sha256 is checked against DIR/manifest.json; then it refuses while
the cluster runs (a supervisord program RUNNING, or any process holding one of the
target files open); then each file replaces its target, whose old file (and its WAL)
is kept beside it as ``PATH.before-restore-TIME``.  A PostgreSQL database is restored
by ``pg_restore --clean`` into ``DATABASE_URL``.  It prints what it did.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deploy import backup, stores

SIDE_FILES = ("-wal", "-shm", "-journal")   # SQLite's: a stale WAL would replay onto the copy


def read_manifest(folder):
    """The manifest, once every file in it matches its checksum (else SystemExit)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / backup.MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit("%s: no readable %s (%s)" % (folder, backup.MANIFEST, exc))
    if manifest.get("format") != backup.FORMAT:
        raise SystemExit("%s: manifest format %r, this restore reads %d"
                         % (folder, manifest.get("format"), backup.FORMAT))
    bad = [name for name, entry in sorted(manifest["files"].items())
           if not (folder / name).is_file() or backup.sha256(folder / name) != entry["sha256"]]
    if bad:
        raise SystemExit("%s: checksum mismatch or missing file: %s; nothing restored"
                         % (folder, ", ".join(bad)))
    return manifest


def holders(paths):
    """``{pid: command}`` of this host's processes with one of ``paths`` open."""
    wanted = {os.path.realpath(p + side) for p in paths for side in ("",) + SIDE_FILES}
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
            if any(os.path.realpath("/proc/%s/fd/%s" % (pid, fd)) in wanted for fd in fds):
                found[int(pid)] = Path("/proc/%s/cmdline" % pid).read_bytes().replace(
                    b"\0", b" ").decode(errors="replace").strip()
        except OSError:          # gone meanwhile, or not ours to look at
            continue
    found.pop(os.getpid(), None)
    return found


def running_programs(conf_path):
    """supervisord.conf's programs that are RUNNING (none when supervisord is not up)."""
    ctl = stores.ROOT / ".venv/bin/supervisorctl"
    try:
        done = subprocess.run([str(ctl), "-c", str(conf_path), "status"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[0] for line in done.stdout.splitlines() if " RUNNING " in line]


def refuse_if_running(targets, conf_path=None):
    programs = running_programs(conf_path) if conf_path else []
    if programs:
        raise SystemExit("the cluster runs (%s): stop it first (Ctrl-C scripts/run); "
                         "nothing restored" % ", ".join(programs))
    busy = holders([t.location for t in targets if t.kind != "postgresql"])
    if busy:
        raise SystemExit("the cluster runs: %s; stop it first; nothing restored" % "; ".join(
            "pid %d (%s)" % item for item in sorted(busy.items())))


def put_sqlite(copy, target, stamp):
    """``copy`` at ``target``; the old file and its side files kept beside it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    for side in ("",) + SIDE_FILES:
        old = Path(str(target) + side)
        if old.exists():
            aside = Path("%s.before-restore-%s%s" % (target, stamp, side))
            os.replace(old, aside)
            kept.append(str(aside))
    partial = Path(str(target) + ".restoring")
    with open(copy, "rb") as src, open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                               0o600), "wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(partial, target)
    return kept


def pg_restore(copy, url):
    done = subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                           "--dbname", url, str(copy)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit("pg_restore failed: %s" % done.stderr.strip())


def restore(folder, targets, conf_path=None):
    """Put ``folder``'s files back at ``targets`` (:class:`deploy.stores.Source`, matched
    by name); returns the lines saying what was done."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    by_name = {entry["name"]: (file_name, entry) for file_name, entry in manifest["files"].items()}
    missing = sorted(set(by_name) - {t.name for t in targets})
    if missing:
        raise SystemExit("the backup holds %s, which this cluster has no place for (name it "
                         "with --store NAME=PATH); nothing restored" % ", ".join(missing))
    chosen = [t for t in targets if t.name in by_name]
    for target in chosen:
        if (target.kind == "postgresql") != (by_name[target.name][1]["kind"] == "postgresql"):
            raise SystemExit("%s: the backup is %s, the cluster's is %s; nothing restored" % (
                target.name, by_name[target.name][1]["kind"], target.kind))
    refuse_if_running(chosen, conf_path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    said = []
    for target in chosen:
        file_name, entry = by_name[target.name]
        if target.kind == "postgresql":
            pg_restore(folder / file_name, target.location)
            said.append("%s: restored into DATABASE_URL by pg_restore" % target.name)
            continue
        kept = put_sqlite(folder / file_name, target.location, stamp)
        position = ""
        if entry["kind"] == "store":
            position = " (epoch %s, %d rooms)" % (entry["epoch"], len(entry["positions"]))
        said.append("%s: %s%s%s" % (target.name, target.location, position,
                                    "; the old one kept as " + ", ".join(kept) if kept else ""))
    said.append("restored %d files from %s (backup of %s); start the cluster" % (
        len(chosen), folder, manifest["time"]))
    return said


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/restore", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a folder made by scripts/backup")
    backup.add_source_options(parser)
    args = parser.parse_args(argv)
    named = stores.named_paths(args.store)
    targets = stores.sources(args.config or stores.CONFIG, os.environ, named, args.database)
    # Stores named on the command line: another cluster than supervisord.conf's, whose
    # programs then say nothing about it (unless --config names its own).
    conf = args.config if named else (args.config or stores.CONFIG)
    print("\n".join(restore(args.folder, targets, conf)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
