"""mloci._sqlite.LazyCache: opened on first use, and no failure of it ever reaches an operation."""

from __future__ import annotations

from pathlib import Path

from mloci._sqlite import LazyCache

SCHEMA = "CREATE TABLE IF NOT EXISTS pairs (k TEXT PRIMARY KEY, v TEXT)"


def test_opens_on_first_use_and_remembers(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "pairs.sqlite"
    cache = LazyCache(path, SCHEMA)
    assert not path.exists()  # nothing is created before it is used
    cache.write("INSERT OR REPLACE INTO pairs VALUES (?, ?)", ("a", "1"))
    assert cache.rows("SELECT v FROM pairs WHERE k=?", ("a",)) == [("1",)]
    cache.close()
    again = LazyCache(path, SCHEMA)
    assert again.rows("SELECT v FROM pairs WHERE k=?", ("a",)) == [("1",)]
    again.close()


def test_disabled_reads_nothing_and_writes_nowhere(tmp_path: Path) -> None:
    cache = LazyCache(None, SCHEMA)
    cache.write("INSERT INTO pairs VALUES (?, ?)", ("a", "1"))
    assert cache.rows("SELECT v FROM pairs", ()) == []
    cache.close()
    assert list(tmp_path.iterdir()) == []


def test_an_unusable_cache_is_a_miss_and_not_retried(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the cache directory should be")
    path = tmp_path / "blocked" / "pairs.sqlite"
    cache = LazyCache(path, SCHEMA)
    cache.write("INSERT INTO pairs VALUES (?, ?)", ("a", "1"))
    assert cache.rows("SELECT v FROM pairs", ()) == []
    (tmp_path / "blocked").unlink()  # even once it could be opened, this cache stays off
    assert cache.rows("SELECT v FROM pairs", ()) == []
    assert not path.exists()


def test_a_failing_statement_is_a_miss(tmp_path: Path) -> None:
    cache = LazyCache(tmp_path / "pairs.sqlite", SCHEMA)
    assert cache.rows("SELECT nonsense FROM nowhere", ()) == []
    cache.write("INSERT INTO nowhere VALUES (1)", ())
    cache.write("INSERT INTO pairs VALUES (?, ?)", ("a", "1"))
    assert cache.rows("SELECT v FROM pairs", ()) == [("1",)]
    cache.close()
