"""The SQLite reference catalog."""

from __future__ import annotations

import hashlib

import pytest

from scanner.catalog import Catalog, NewWork
from scanner.errors import CatalogError
from scanner.types import Clearance, Reference


def _sha(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _work(seed: str, sha: str | None = None, **kw) -> NewWork:
    base = dict(
        sha256=sha or _sha(seed), title=f"Work {seed}", rights_holder="Studio X",
        clearance=Clearance.UNCLEARED, media_type="image", path=f"/refs/{seed}.png",
        width=640, height=480,
    )
    base.update(kw)
    return NewWork(**base)


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "sub" / "catalog.db")
    yield c
    c.close()


def test_add_and_get(cat):
    ref, created = cat.add_work(_work("a"))
    assert created is True
    assert isinstance(ref, Reference)
    assert ref.id >= 1
    assert ref.sha256 == _sha("a")
    assert ref.title == "Work a"
    assert ref.rights_holder == "Studio X"
    assert ref.clearance is Clearance.UNCLEARED
    assert ref.media_type == "image"
    assert ref.path == "/refs/a.png"
    assert (ref.width, ref.height) == (640, 480)
    assert ref.added_at  # ISO timestamp
    assert cat.get(ref.id) == ref
    assert cat.by_sha256(ref.sha256) == ref
    assert cat.count() == 1


def test_catalog_creates_parent_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "cat.db"
    c = Catalog(path)
    c.add_work(_work("x"))
    c.close()
    assert path.is_file()


def test_clearance_given_as_string_is_accepted(cat):
    ref, _ = cat.add_work(_work("lic", clearance="licensed"))
    assert ref.clearance is Clearance.LICENSED


def test_bad_clearance_rejected_and_nothing_written(cat):
    with pytest.raises(ValueError):
        cat.add_work(_work("bad", clearance="stolen"))
    assert cat.count() == 0


def test_readd_same_sha_is_idempotent(cat):
    ref, created = cat.add_work(_work("a"))
    again, created2 = cat.add_work(_work("a", title="A different title"))
    assert created2 is False
    assert again == ref
    assert again.title == "Work a"  # the first registration wins
    assert cat.count() == 1


def test_get_unknown(cat):
    assert cat.get(12345) is None
    assert cat.by_sha256("0" * 64) is None


def test_find_by_id_full_sha_and_prefix(cat):
    a, _ = cat.add_work(_work("a"))
    b, _ = cat.add_work(_work("b"))
    assert cat.find(str(a.id)) == a
    assert cat.find(str(b.id)) == b
    assert cat.find(a.sha256) == a
    assert cat.find(b.sha256[:6]) == b
    assert cat.find(b.sha256[:10].upper()) == b


def test_find_ambiguous_prefix(cat):
    cat.add_work(_work("one", sha="abcdef01" + "0" * 56))
    cat.add_work(_work("two", sha="abcdef02" + "0" * 56))
    with pytest.raises(CatalogError, match="matches 2"):
        cat.find("abcdef")
    assert cat.find("abcdef01").title == "Work one"


def test_find_short_or_unknown_key(cat):
    a, _ = cat.add_work(_work("a"))
    with pytest.raises(CatalogError, match="no reference"):
        cat.find(a.sha256[:5])  # too short to be a prefix
    with pytest.raises(CatalogError, match="no reference"):
        cat.find("999")
    with pytest.raises(CatalogError, match="no reference"):
        cat.find("f" * 64 if not a.sha256.startswith("f") else "e" * 64)


def test_find_digit_prefix_falls_back_to_sha(cat):
    ref, _ = cat.add_work(_work("digits", sha="123456" + "a" * 58))
    assert cat.find("123456") == ref  # no work with id 123456, so it is a sha prefix


@pytest.mark.parametrize("key", ["______", "abc%%%"])
def test_find_treats_prefix_literally_not_as_like_pattern(cat, key):
    """`refs remove ______` must not pick an arbitrary work: '_' and '%' are not hex digits."""
    cat.add_work(_work("only", sha="abcdef" + "1" * 58))
    with pytest.raises(CatalogError):
        cat.find(key)


def test_works_listing_and_filter(cat):
    a, _ = cat.add_work(_work("a"))
    s, _ = cat.add_work(_work("s", media_type="audio"))
    b, _ = cat.add_work(_work("b"))
    assert [r.id for r in cat.works()] == [a.id, s.id, b.id]
    assert [r.id for r in cat.works("image")] == [a.id, b.id]
    assert [r.id for r in cat.works("audio")] == [s.id]
    assert cat.works("video") == []


def test_remove(cat):
    a, _ = cat.add_work(_work("a"))
    b, _ = cat.add_work(_work("b"))
    assert cat.remove([a.id, 999]) == 1
    assert cat.get(a.id) is None
    assert cat.by_sha256(a.sha256) is None
    assert cat.get(b.id) == b
    assert cat.count() == 1
    assert cat.remove([a.id]) == 0
    assert cat.remove([]) == 0
    with pytest.raises(CatalogError):
        cat.find(a.sha256)


def test_ids_never_reused_after_remove(tmp_path):
    path = tmp_path / "cat.db"
    c = Catalog(path)
    ids = [c.add_work(_work(str(i)))[0].id for i in range(3)]
    c.remove(ids)
    assert c.count() == 0
    new, _ = c.add_work(_work("new"))
    assert new.id > max(ids)
    c.remove([new.id])
    c.close()
    # also after reopening an emptied catalog
    c = Catalog(path)
    newer, _ = c.add_work(_work("newer"))
    assert newer.id > new.id
    # re-adding a removed work gives it a fresh id, not its old one
    back, created = c.add_work(_work("0"))
    assert created and back.id > newer.id and back.id != ids[0]
    c.close()


def test_thumbnails(cat):
    thumb = b"\xff\xd8\xff" + bytes(range(256)) * 4
    a, _ = cat.add_work(_work("a", thumbnail=thumb))
    b, _ = cat.add_work(_work("b"))
    assert cat.thumbnail(a.id) == thumb
    assert cat.thumbnail(b.id) is None
    assert cat.thumbnail(4242) is None


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "cat.db"
    c = Catalog(path)
    a, _ = c.add_work(_work("a", thumbnail=b"thumb", clearance=Clearance.OWNED))
    b, _ = c.add_work(_work("b"))
    c.remove([b.id])
    c.close()
    c2 = Catalog(path)
    assert c2.count() == 1
    assert c2.get(a.id) == a
    assert c2.get(a.id).clearance is Clearance.OWNED
    assert c2.thumbnail(a.id) == b"thumb"
    assert c2.get(b.id) is None
    _, created = c2.add_work(_work("a"))
    assert created is False
    c2.close()


def test_two_connections_see_each_others_writes(tmp_path):
    path = tmp_path / "cat.db"
    c1, c2 = Catalog(path), Catalog(path)
    ref, _ = c1.add_work(_work("a"))
    assert c2.get(ref.id) == ref
    c1.close()
    c2.close()


def test_not_a_database_is_catalog_error(tmp_path):
    path = tmp_path / "catalog.db"
    path.write_bytes(b"this is definitely not sqlite" * 100)
    with pytest.raises(CatalogError, match="cannot open catalog"):
        Catalog(path)


def test_in_memory_catalog():
    c = Catalog(":memory:")
    ref, _ = c.add_work(_work("m"))
    assert c.get(ref.id) == ref
    c.close()
