"""registries.conf v2 parsing and prefix matching (the file podman and CRI-O read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloci.errors import UsageError
from mloci.store import mirrors
from mloci.types.reference import Reference

CONF = """
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "registry.example.com"

[[registry.mirror]]
location = "mirror-a.internal:5000"
insecure = true

[[registry.mirror]]
location = "mirror-b.internal/cache"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "registry.example.com/ml/special"
location = "registry.example.com/ml/special"
blocked = true

[[registry]]
prefix = "*.corp.example"
location = "corp.example"
[[registry.mirror]]
location = "corp-mirror:5000"
"""


def test_parse_reads_registries_mirrors_and_flags() -> None:
    entries = mirrors.parse(CONF)
    assert [e.prefix for e in entries] == [
        "registry.example.com",
        "registry.example.com/ml/special",
        "*.corp.example",
    ]
    first = entries[0]
    assert first.mirrors == (
        mirrors.Mirror("mirror-a.internal:5000", True, "all"),
        mirrors.Mirror("mirror-b.internal/cache", False, "digest-only"),
    )
    assert entries[1].blocked and not entries[0].blocked


def test_longest_prefix_wins_and_the_rest_maps_onto_the_mirror() -> None:
    entries = mirrors.parse(CONF)
    found = mirrors.match(entries, Reference.parse("registry.example.com/ml/churn:1"))
    assert found is not None and found[0].prefix == "registry.example.com" and found[1] == "ml/churn"
    special = mirrors.match(entries, Reference.parse("registry.example.com/ml/special/x:1"))
    assert special is not None and special[0].blocked
    # Whole components only: "ml/specialty" is not under "ml/special".
    other = mirrors.match(entries, Reference.parse("registry.example.com/ml/specialty:1"))
    assert other is not None and other[0].prefix == "registry.example.com"
    wild = mirrors.match(entries, Reference.parse("eu.corp.example/a/b:1"))
    assert wild is not None and wild[1] == "a/b"
    assert mirrors.match(entries, Reference.parse("corp.example/a:1")) is None
    assert mirrors.match(entries, Reference.parse("local-name:1")) is None
    mapping = mirrors._Mapping(entries[0].mirrors[1], "ml/churn", "ml/churn")
    assert str(mapping(Reference(None, "ml/churn", tag="1"))) == "mirror-b.internal/cache/ml/churn:1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[registry]]\nlocation = 'a'\ninsecure = 'yes'", "must be true or false"),
        ("[[registry]]\nlocation = 'https://a'", "must not include a scheme"),
        ("[[registry]]\nlocation = 'a'\n[[registry.mirror]]\ninsecure = true", "needs a location"),
        (
            "[[registry]]\nlocation = 'a'\n[[registry.mirror]]\nlocation = 'b'\npull-from-mirror = 'x'",
            "pull-from-mirror",
        ),
        ("[registry]\nlocation = 'a'", "version 2"),
        ("[[registry]\n", "not valid TOML"),
    ],
)
def test_bad_files_are_clear_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        mirrors.parse(text)


def test_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOCI_REGISTRIES_CONF", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "containers" / "registries.conf"
    user.parent.mkdir(parents=True)
    user.write_text(CONF)
    assert mirrors.config_path() == user
    explicit = tmp_path / "explicit.conf"
    monkeypatch.setenv("MLOCI_REGISTRIES_CONF", str(explicit))
    assert mirrors.config_path() == explicit
    with pytest.raises(UsageError, match="does not exist"):
        mirrors.load()


def test_a_malformed_default_file_is_a_warning_an_explicit_one_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOCI_REGISTRIES_CONF", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "containers" / "registries.conf"
    user.parent.mkdir(parents=True)
    user.write_text("[[registry]\n")
    assert mirrors.load() == []
    assert "not valid TOML" in capsys.readouterr().err
    monkeypatch.setenv("MLOCI_REGISTRIES_CONF", str(user))
    with pytest.raises(UsageError, match="not valid TOML"):
        mirrors.load()


def test_blocked_registries_are_refused_and_modes_pick_mirrors(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(CONF)
    origin = object()

    def no_mirror(host: str, insecure: bool) -> object:
        return object()

    with pytest.raises(UsageError, match="blocked"):
        mirrors.with_mirrors(origin, Reference.parse("registry.example.com/ml/special/x:1"), no_mirror, conf)  # type: ignore[arg-type]
    assert mirrors.with_mirrors(origin, Reference.parse("elsewhere.example/x:1"), no_mirror, conf) is origin  # type: ignore[arg-type]
    store = mirrors.with_mirrors(origin, Reference.parse("registry.example.com/ml/churn:1"), no_mirror, conf)  # type: ignore[arg-type]
    assert isinstance(store, mirrors.MirroredStore)
    by_tag = [
        location for location, _, _ in store._mirrors_for(Reference.parse("registry.example.com/ml/churn:1"))
    ]
    by_digest = [
        location
        for location, _, _ in store._mirrors_for(
            Reference.parse("registry.example.com/ml/churn@sha256:" + "a" * 64)
        )
    ]
    assert by_tag == ["mirror-a.internal:5000"]  # mirror-b is digest-only
    assert by_digest == ["mirror-a.internal:5000", "mirror-b.internal/cache"]
