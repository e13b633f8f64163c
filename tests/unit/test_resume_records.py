"""The on-disk records that let a killed pull or push resume: partial downloads and upload sessions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mloci.errors import IntegrityError, UnavailableError
from mloci.ops._partial import Partial, clean_partials, partial_dir, worth_keeping
from mloci.store.registry.sessions import UploadSessions, file_subject
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor

DATA = os.urandom(3 << 20)
DESCRIPTOR = Descriptor(media_type="application/octet-stream", digest=Digest.of(DATA), size=len(DATA))


def test_partial_records_spans_and_reopens_where_it_stopped(tmp_path: Path) -> None:
    partial = Partial.open(tmp_path, DESCRIPTOR)
    assert partial is not None
    os.pwrite(partial.fd, DATA[:1000], 0)
    partial.written(0, 1000)
    os.pwrite(partial.fd, DATA[2000:3000], 2000)
    partial.written(2000, 1000)
    assert Partial.open(tmp_path, DESCRIPTOR) is None  # locked while this one is open
    partial.close()

    again = Partial.open(tmp_path, DESCRIPTOR)
    assert again is not None
    assert again.prefix() == 1000
    assert again.missing() == [(1000, 2000), (3000, len(DATA))]
    hasher = again.hash_prefix(1000, lambda: None)
    hasher.update(DATA[1000:])
    assert hasher.hexdigest() == DESCRIPTOR.digest.encoded
    again.close()


def test_a_sidecar_for_other_content_or_past_the_file_is_not_trusted(tmp_path: Path) -> None:
    partial = Partial.open(tmp_path, DESCRIPTOR)
    assert partial is not None
    os.pwrite(partial.fd, DATA[:500], 0)
    partial.written(0, 500)
    partial.close()
    sidecar = next(tmp_path.glob("*.json"))
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "spans": [[0, 4000]]}))  # more than the file holds
    reopened = Partial.open(tmp_path, DESCRIPTOR)
    assert reopened is not None and reopened.prefix() == 500
    reopened.close()
    sidecar.write_text(json.dumps({**record, "size": 1}))
    reopened = Partial.open(tmp_path, DESCRIPTOR)
    assert reopened is not None and reopened.prefix() == 0
    reopened.close(keep=False)
    assert list(tmp_path.iterdir()) == []


def test_clean_removes_only_unlocked_partials_it_wrote(tmp_path: Path) -> None:
    live = Partial.open(tmp_path, DESCRIPTOR)
    assert live is not None
    os.pwrite(live.fd, b"x", 0)
    live.written(0, 1)
    live.save()
    other = Descriptor(media_type="application/octet-stream", digest=Digest.of(b"other"), size=5)
    dead = Partial.open(tmp_path, other)
    assert dead is not None
    os.pwrite(dead.fd, b"ot", 0)
    dead.written(0, 2)
    dead.close()
    (tmp_path / "notes.txt").write_text("not ours")
    clean_partials(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.data.name, live.sidecar.name, "notes.txt"]
    )
    live.close()


def test_a_linked_partial_directory_is_neither_written_nor_cleaned(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / f"sha256-{DESCRIPTOR.digest.encoded}"
    victim.write_bytes(b"not mloci's")
    link = tmp_path / ".mloci-partial-out"
    link.symlink_to(elsewhere)
    assert Partial.open(link, DESCRIPTOR) is None
    clean_partials(link)
    assert victim.read_bytes() == b"not mloci's"


def test_partial_dir_sits_on_the_targets_filesystem(tmp_path: Path) -> None:
    assert partial_dir(tmp_path / "new") == tmp_path / ".mloci-partial-new"
    (tmp_path / "old").mkdir()
    assert partial_dir(tmp_path / "old") == tmp_path / "old" / ".mloci" / "partial"


def test_only_network_failures_and_interrupts_keep_a_partial() -> None:
    assert worth_keeping(KeyboardInterrupt())
    assert worth_keeping(UnavailableError("down"))
    assert worth_keeping(ConnectionResetError())
    assert not worth_keeping(IntegrityError("wrong bytes"))
    assert not worth_keeping(OSError(28, "No space left on device"))


def test_upload_records_hold_no_credentials_and_are_private(tmp_path: Path) -> None:
    sessions = UploadSessions(tmp_path / "uploads")
    url = "https://user:secret@r.example/v2/ml/m/blobs/uploads/abc?_state=xyz"
    sessions.save("r.example", "ml/m", "sha256:00", url)
    (path,) = (tmp_path / "uploads").iterdir()
    assert "secret" not in path.read_text() and "user" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "uploads").stat().st_mode) == 0o700
    assert (
        sessions.load("r.example", "ml/m", "sha256:00")
        == "https://r.example/v2/ml/m/blobs/uploads/abc?_state=xyz"
    )
    assert sessions.load("r.example", "ml/other", "sha256:00") is None
    sessions.forget("r.example", "ml/m", "sha256:00")
    assert list((tmp_path / "uploads").iterdir()) == []


def test_records_older_than_a_week_are_pruned_and_foreign_files_kept(tmp_path: Path) -> None:
    sessions = UploadSessions(tmp_path)
    sessions.save("r.example", "ml/m", "sha256:01", "https://r.example/v2/ml/m/blobs/uploads/a")
    (old,) = tmp_path.glob("*.json")
    os.utime(old, (0, 0))
    (tmp_path / "mine.json").write_text("{}")
    sessions.save("r.example", "ml/m", "sha256:02", "https://r.example/v2/ml/m/blobs/uploads/b")
    assert not old.exists()
    assert (tmp_path / "mine.json").exists()
    assert sessions.load("r.example", "ml/m", "sha256:02") is not None


def test_a_changed_file_is_a_new_upload_subject(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    first = file_subject(path)
    path.write_bytes(b"two!")
    assert file_subject(path) != first


def test_content_range_is_read_or_falls_back_to_what_was_asked() -> None:
    from mloci.ops._partial import _content_range

    assert _content_range("bytes 100-199/1000", 100) == (100, 199)
    assert _content_range("bytes 100-199/*", 100) == (100, 199)
    assert _content_range("bytes 5-9/10", 7) == (5, 9)  # the caller refuses a wrong start
    for unreadable in (None, "", "bytes */1000", "items 1-2/3", "bytes a-b/c"):
        assert _content_range(unreadable, 42) == (42, None)
