"""What `image build` reads from a pulled model: mloci's metadata must be a JSON object."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloci.errors import IntegrityError
from mloci.ops.image import _pulled_manifest
from mloci.types.bundle_metadata import PULLED_METADATA


def test_the_kept_normalized_manifest_wins_over_manifest_json(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"name": "users-own"}')
    (tmp_path / PULLED_METADATA).parent.mkdir(parents=True)
    (tmp_path / PULLED_METADATA).write_text('{"name": "churn-model"}')
    assert _pulled_manifest(tmp_path) == {"name": "churn-model"}


@pytest.mark.parametrize("content", [b"[1, 2]", b"not json", b"\xff\xfe"])
def test_damaged_kept_metadata_is_an_integrity_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / PULLED_METADATA).parent.mkdir(parents=True)
    (tmp_path / PULLED_METADATA).write_bytes(content)
    with pytest.raises(IntegrityError, match="not a JSON object"):
        _pulled_manifest(tmp_path)


@pytest.mark.parametrize("content", [b"[1, 2]", b"not json"])
def test_another_tools_manifest_json_is_not_ours(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "manifest.json").write_bytes(content)
    assert _pulled_manifest(tmp_path) == {}
    assert _pulled_manifest(tmp_path / "missing") == {}
