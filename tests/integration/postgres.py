"""A real PostgreSQL server for the tests: Debian's binaries, ``initdb`` in a temporary
folder, a free loopback port, its unix socket in that folder; stopped by pid.

Root cannot run postgres, so as root the server runs as the ``postgres`` user (made by
Debian's package) through ``runuser``.  Without the binaries the tests that need it
are skipped, saying why; scripts/setup --test installs them.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.processes import Proc, free_port, wait_until

USER = "chat"       # the server's superuser, made by initdb (trust auth, loopback only)


def binaries():
    """The folder of initdb and postgres: Debian's newest, else PATH's; None if absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None or not (Path(initdb).parent / "postgres").exists():
        return None
    return Path(initdb).parent


class PostgresServer:
    """One server, ``url`` for DATABASE_URL; ``stop()`` ends it and removes its folder."""

    def __init__(self):
        bin_dir = binaries()
        if bin_dir is None:
            pytest.skip("PostgreSQL's initdb/postgres are not installed "
                        "(scripts/setup --test installs Debian's postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="chat-postgres-"))
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run the server")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data, sockets = self.folder / "data", self.folder
        done = subprocess.run(self.as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", USER,
                                              "-A", "trust", "-E", "UTF8", "--no-sync"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        self.proc = Proc("postgres", self.as_user + [
            str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
            "-h", "127.0.0.1", "-k", str(sockets),
            "-c", "fsync=off", "-c", "full_page_writes=off",   # a throwaway server
        ], dict(os.environ), self.folder).start()
        self.url = "postgres://%s@127.0.0.1:%d/postgres" % (USER, self.port)
        wait_until(self.ready, 30, "postgres accepting connections", interval=0.2)

    def ready(self):
        assert self.proc.alive(), self.proc.log()[-3000:]
        import psycopg
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self):
        self.proc.stop(timeout=20)
        shutil.rmtree(self.folder, ignore_errors=True)
