"""Legacy ``.sig`` signing against rival signers that replace the manifest between our write and re-read.

No registry can be made to lose a write on cue, so the rival is a local store that replaces the
``.sig`` manifest right after each of ours (the one fake here: a fault, not a protocol).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mloci.errors import ConflictError
from mloci.ops.sign import SignResult, _sign_legacy, signature_tag
from mloci.store.layout import LayoutStore
from mloci.trust.keys import generate_keypair, load_private_key
from mloci.types import mediatype
from mloci.types.blob import Blob
from mloci.types.manifest import Descriptor, Manifest
from mloci.types.reference import Reference

REF = Reference(None, "churn-model", "1.0.0")


class RivalStore(LayoutStore):
    """After each ``.sig`` write, a rival puts back a manifest without our layer, ``rivalries`` times."""

    def __init__(self, home: Path, rivalries: int) -> None:
        super().__init__(home)
        self.rivalries = rivalries
        self.sig_writes = 0

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        written = super().push_manifest(ref, data, media_type)
        if ref.tag is not None and ref.tag.endswith(".sig"):
            self.sig_writes += 1
            if self.rivalries > 0:
                self.rivalries -= 1
                rival = Manifest.from_json(data).model_copy(update={"layers": []})
                super().push_manifest(ref, rival.to_json(), media_type)
        return written


@pytest.fixture
def subject(tmp_path: Path) -> tuple[LayoutStore, Path]:
    store = LayoutStore(tmp_path / "home")
    config = Blob.of_bytes(mediatype.OCI_CONFIG, b"{}")
    store.push_blob(REF.repository, config)
    manifest = Manifest(media_type=mediatype.OCI_MANIFEST, config=config.descriptor, layers=[])
    store.push_manifest(REF, manifest.to_json(), mediatype.OCI_MANIFEST)
    key, _ = generate_keypair(tmp_path / "k", b"", allow_unencrypted=True)
    return store, key


def _sign(store: LayoutStore, key: Path) -> SignResult:
    digest = store.resolve(REF).digest
    return _sign_legacy(store, REF, digest, load_private_key(key, b""), {})


def test_a_signature_a_rival_dropped_is_written_again(
    tmp_path: Path, subject: tuple[LayoutStore, Path]
) -> None:
    _, key = subject
    store = RivalStore(tmp_path / "home", rivalries=2)
    result = _sign(store, key)
    assert store.sig_writes == 3 and not result.unchanged and result.signatures == 1
    assert result.signature_reference is not None
    assert result.signature_reference.tag == signature_tag(result.digest)
    again = _sign(store, key)
    assert again.unchanged and store.sig_writes == 3  # already there: nothing written


def test_rivals_that_never_stop_give_a_temporary_conflict(
    tmp_path: Path, subject: tuple[LayoutStore, Path]
) -> None:
    _, key = subject
    store = RivalStore(tmp_path / "home", rivalries=1000)
    with pytest.raises(ConflictError) as raised:
        _sign(store, key)
    assert store.sig_writes == 5  # bounded: it gives up, and says so
    assert raised.value.temporary and "the signature was not kept" in str(raised.value)
    assert raised.value.hint == "sign again"
