"""sigstore-conformance cases: Rekor v2 entries, RFC 3161 timestamps, key-based bundles with a log entry.

The cases (tests/data/sigstore-conformance, copied unchanged; SOURCE.md names the commit) are the
ones every sigstore client must pass. Each verifies through :func:`verify_bundle_file` (what
``mloci verify-bundle`` runs) when its name does not end in ``_fail``, and is rejected with a
one-line reason otherwise. For keyless bundles sigstore-python does the certificate work and mloci
checks the timestamps and log entries a second time with its own code, so these also exercise
:mod:`mloci.trust.timestamp` and :mod:`mloci.trust.rekor` on real Rekor v2 output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SHARED

from mloci.errors import IntegrityError, MlociError
from mloci.trust.bundle import Verified
from mloci.trust.keyless import IdentityRule
from mloci.trust.verifier import TrustRule, verify_bundle_file

pytest.importorskip("sigstore", reason="keyless verification needs the sigstore extra")

CASES = Path(__file__).parent.parent / "data" / "sigstore-conformance"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def public_good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vector = json.loads(
        (SHARED / "interop/sigstore/06-conformance-keyless-dsse-intoto-v0.3.json").read_text()
    )
    path = tmp_path_factory.mktemp("root") / "trusted_root.json"
    path.write_text(json.dumps(vector["trusted_root"]))
    return path


def run(name: str, public_good_root: Path) -> Verified:
    case = CASES / name
    root = case / "trusted_root.json" if (case / "trusted_root.json").exists() else public_good_root
    artifact = case / "artifact" if (case / "artifact").exists() else CASES / "a.txt"
    if (case / "key.pub").exists():
        rule = TrustRule.of(case / "key.pub", None, root)
    else:
        rule = TrustRule.of(None, IdentityRule(identity=IDENTITY, issuer=ISSUER), root)
    return verify_bundle_file(case / "bundle.sigstore.json", rule, artifact=artifact).verified


@pytest.mark.parametrize("name", [n for n in NAMES if not n.endswith("_fail")])
def test_conformance_case_verifies(name: str, public_good_root: Path) -> None:
    verified = run(name, public_good_root)
    document = json.loads((CASES / name / "bundle.sigstore.json").read_text())
    entries = document["verificationMaterial"].get("tlogEntries") or []
    assert verified.log is not None or not entries
    if name.startswith("rekor2-"):
        log = verified.log
        assert log.integrated_time is None and "log2025" in log.log_url  # a Rekor v2 shard
        assert verified.timestamps  # the only signed time a Rekor v2 bundle has


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("_fail")])
def test_conformance_case_is_rejected(name: str, public_good_root: Path) -> None:
    with pytest.raises(MlociError) as caught:
        run(name, public_good_root)
    assert isinstance(caught.value, IntegrityError) or name == "managed-key-wrong-key_fail"
    assert "\n" not in caught.value.message  # one line, whatever the bundle holds


def test_key_based_bundle_with_log_entry_and_timestamp_reports_both(public_good_root: Path) -> None:
    verified = run("managed-key-happy-path", public_good_root)
    assert verified.signer.startswith("key ")
    assert verified.log.integrated_time is not None
    (moment,) = verified.timestamps
    assert moment.isoformat() == "2025-12-18T17:04:39+00:00"
