"""The archive's search (web/archive/search/) on both databases, real servers: every word,
any case, English word forms; never a deleted message, an edited one by its current text;
only the rooms asked; newest first, ``before`` and ``limit``; the SQLite index's triggers
back after a migrate.

Django runs in this process on the archive's tables only (conftest's ``archive_databases``).
"""
import pytest

from .test_archive_writer import message

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def using(archive_db):
    return archive_db


def write(using, *events):
    from archive.writer import write
    write(list(events), using=using)


def found(using, q, rooms=("a",), **kwargs):
    from archive.search import ArchiveSearch
    return [(hit["room"], hit["seq"]) for hit in ArchiveSearch(using).search(q, list(rooms), **kwargs)]


def test_every_word_is_found_in_any_case_and_word_form_newest_first(using):
    write(using, message("a", 1, "The quick brown foxes"), message("a", 2, "quick red car"),
          message("a", 3, "a slow brown fox jumped"), message("a", 4, "Brown cars everywhere"))
    assert found(using, "QUICK fox") == [("a", 1)]
    assert found(using, "brown") == [("a", 4), ("a", 3), ("a", 1)]
    assert found(using, "car") == [("a", 4), ("a", 2)]             # "cars" is a form of "car"
    assert found(using, "jumping foxes") == [("a", 3)]
    assert found(using, "quick purple") == []


def test_a_deleted_message_is_never_found_and_an_edited_one_by_its_current_text(using):
    write(using, message("a", 1, "apple pie"), message("a", 2, "apple tart"),
          message("a", 3, "banana split", kind="edit", target=1),
          message("a", 4, kind="delete", target=2))
    from archive.search import ArchiveSearch
    assert found(using, "apple") == []
    assert found(using, "tart") == []
    assert found(using, "pie") == []
    hits = ArchiveSearch(using).search("banana", ["a"])
    assert [(h["seq"], h["text"], h["kind"], h["edited"]) for h in hits] == [
        (1, "banana split", "message", 1_003)]
    write(using, message("a", 5, "cherry", kind="edit", target=1))
    assert found(using, "banana") == [] and found(using, "cherry") == [("a", 1)]


def test_only_the_rooms_asked_are_searched(using):
    write(using, message("a", 1, "shared word"), message("b", 1, "shared word"),
          message("c", 1, "shared word"))
    assert found(using, "shared", rooms=["a", "c"]) == [("c", 1), ("a", 1)]
    assert found(using, "shared", rooms=[]) == []
    assert found(using, "shared", rooms=["nowhere"]) == []


def test_many_rooms_are_searched_by_the_shorter_list_of_ids(using, monkeypatch):
    import archive.search
    monkeypatch.setattr(archive.search, "NAMES_PER_QUERY", 1)   # every room's id is read
    write(using, *[message(room, 1, "wide word") for room in "abcde"])
    assert found(using, "wide", rooms="abcd") == [("d", 1), ("c", 1), ("b", 1), ("a", 1)]
    assert found(using, "wide", rooms="abcde") == [(room, 1) for room in "edcba"]
    assert found(using, "wide", rooms="ae") == [("e", 1), ("a", 1)]
    assert found(using, "wide", rooms=["nowhere", "x"]) == []


def test_before_and_limit_page_back_through_the_hits(using):
    write(using, *[message("a", seq, "line %d of the story" % seq) for seq in range(1, 31)])
    assert found(using, "story", limit=5) == [("a", seq) for seq in range(30, 25, -1)]
    assert found(using, "story", before=26, limit=5) == [("a", seq) for seq in range(25, 20, -1)]
    assert found(using, "story", before=3) == [("a", 2), ("a", 1)]


def test_a_query_is_words_only_whatever_punctuation_it_holds(using):
    write(using, message("a", 1, "near the end"), message("a", 2, "the end is here"))
    assert found(using, 'end" NEAR(') == [("a", 1)]
    assert found(using, "*:& | !") == []
    assert found(using, "-end") == [("a", 2), ("a", 1)]


def test_a_migrate_puts_back_the_sqlite_index_triggers_a_table_rebuild_dropped(archive_databases):
    from django.core.management import call_command
    from django.db import connections
    from archive.models import Room
    Room.objects.using("default").all().delete()
    with connections["default"].cursor() as cursor:
        cursor.execute("DROP TRIGGER archive_search_insert")
    call_command("migrate", "archive", database="default", verbosity=0)
    write("default", message("a", 1, "after the rebuild"))
    assert found("default", "rebuild") == [("a", 1)]
