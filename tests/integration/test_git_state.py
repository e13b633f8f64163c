"""The bundle records the git commit it was built from and whether the work tree was dirty (runs git)."""

from __future__ import annotations

from pathlib import Path

from helpers import git

from mloci.bundle import load_bundle, pack
from mloci.bundle.git import git_state
from mloci.bundle.pack import with_git
from mloci.types import annotations as ann


def test_git_head_and_dirtiness_are_recorded_when_the_manifest_has_no_sha(bundle: Path) -> None:
    git(bundle, "init", "-q")
    git(bundle, "add", "-A")
    git(bundle, "commit", "-qm", "model")
    head = git(bundle, "rev-parse", "HEAD")
    packed = pack(with_git(load_bundle(bundle), git_state(bundle)))
    assert packed.manifest.annotation(ann.REVISION) == head
    assert packed.manifest.annotation(ann.GIT_DIRTY) == "false"
    assert packed.tags == ("1.0.0", f"1.0.0-{head[:7]}")
    (bundle / "notes.md").write_text("uncommitted")
    dirty = pack(with_git(load_bundle(bundle), git_state(bundle)))
    assert dirty.manifest.annotation(ann.GIT_DIRTY) == "true"
