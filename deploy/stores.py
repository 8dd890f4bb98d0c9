"""The cluster's data: every broker's store and the nodes' database, where they live.

What ``scripts/backup`` copies and ``scripts/restore`` puts back.  The brokers are
supervisord.conf's programs that run ``-m broker`` (``broker``, ``broker2``, and pairs
2..N in the files it includes, as scripts/run writes them), each at its
``CHAT_BROKER_STATE`` (relative to the program's ``directory``); the database is ``DATABASE_URL``'s when set, else the
SQLite file at ``CHAT_DATABASE_PATH`` (relative to the repository), which also holds
the archive's tables when they exist.  Any of them can be named on the command line
instead (a cluster not run by supervisor, or a copy restored into another folder).
"""
import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path

from chatstream.config import BrokerConfig
from chatstream import config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "supervisord.conf"
DEFAULT_STORE = BrokerConfig.state_path
ENVIRONMENT_ITEM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Source:
    """One thing to copy: ``kind`` "store" (a broker's SQLite file), "sqlite" or
    "postgresql" (the nodes' database); ``location`` a path or a database URL."""
    name: str
    kind: str
    location: str

    @property
    def file_name(self):
        """Its file in a backup folder."""
        return "%s.%s" % (self.name, "pgdump" if self.kind == "postgresql" else "sqlite3")


def broker_programs(conf_path):
    """``[(program, its section, environment)]`` of supervisord.conf's programs that run
    ``-m broker``, ``%(here)s`` replaced by the file's folder in every value."""
    conf_path = Path(conf_path)
    here = str(conf_path.resolve().parent)
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read(conf_path)
    # the files its [include] names: scripts/run's broker pairs 2..N (var/pairs/), added nodes
    included = parser.get("include", "files", fallback="").replace("%(here)s", here).split()
    parser.read(sorted(str(path) for pattern in included
                       for path in Path(pattern).parent.glob(Path(pattern).name)))
    found = []
    for section in parser.sections():
        if not section.startswith("program:"):
            continue
        program = {key: value.replace("%(here)s", here) for key, value in parser[section].items()}
        program.setdefault("directory", here)
        if not re.search(r"-m broker\b", program.get("command", "")):
            continue
        environment = dict(ENVIRONMENT_ITEM.findall(program.get("environment", "")))
        found.append((section.split(":", 1)[1], program, environment))
    return found


def broker_stores(conf_path, environ=None):
    """``{program: store path}`` of supervisord.conf's broker programs: the program's
    own ``CHAT_BROKER_STATE``, else ``environ``'s (which supervisord passes on), else
    the broker's default."""
    inherited = (environ or {}).get("CHAT_BROKER_STATE") or DEFAULT_STORE
    return {name: str(Path(program["directory"]) / environment.get("CHAT_BROKER_STATE", inherited))
            for name, program, environment in broker_programs(conf_path)}


def database(environ, root=ROOT):
    """The nodes' database as a :class:`Source` named "database"."""
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        if not url.startswith(("postgres://", "postgresql://")):
            raise SystemExit("DATABASE_URL is not PostgreSQL: only SQLite files and "
                             "PostgreSQL (pg_dump) are backed up")
        return Source("database", "postgresql", url)
    path = Path(environ.get("CHAT_DATABASE_PATH") or config.DATABASE_PATH)
    return Source("database", "sqlite", str(path if path.is_absolute() else Path(root) / path))


def sources(conf_path, environ, stores=None, database_path=None):
    """Everything to copy: the brokers' stores (``stores`` {name: path}, else from
    ``conf_path``) and the database (``database_path``, else from ``environ``)."""
    found = stores if stores else broker_stores(conf_path, environ)
    if not found:
        raise SystemExit("no broker program in %s and no --store given" % conf_path)
    db = Source("database", "sqlite", str(database_path)) if database_path else database(environ)
    return [Source(name, "store", str(path)) for name, path in sorted(found.items())] + [db]


def named_paths(items):
    """``{name: path}`` from ``["name=path", ...]`` (the --store options)."""
    paths = {}
    for item in items or ():
        name, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name) or not path:
            raise SystemExit("--store takes NAME=PATH, not %r" % item)
        paths[name] = os.path.abspath(path)
    return paths
