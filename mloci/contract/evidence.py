"""Test results as signed evidence: an in-toto Test Result v0.1 attestation on the tested digest.

The statement (in-toto/attestation ``spec/predicates/test-result.md``)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": <registry/repository>, "digest": {"sha256": <manifest digest>}}],
     "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
     "predicate": {"result": "PASSED" | "FAILED",
                   "configuration": [{"name": "manifest.json", "digest": {"sha256": …}}],
                   "url": <CI run, when known>,
                   "passedTests": [...], "warnedTests": [], "failedTests": [...],
                   "mloci": {"tests": [per-test result and measurements], "environment": {...},
                             "startedOn": …, "finishedOn": …}}}

``mloci`` is an extension field (in-toto consumers ignore fields they do not know) carrying
what was measured, so a policy can put thresholds on it. The statement is signed in a DSSE
envelope and attached as a referrer exactly as provenance is (:mod:`mloci.ops.attest`), so
``mloci verify-attestation REF --key K --type https://in-toto.io/attestation/test-result/v0.1``
verifies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mloci.buildenv import ci_run_url
from mloci.contract.run import ContractReport
from mloci.errors import MlociError, UsageError
from mloci.ops.attach import AttachResult, attach_blob
from mloci.ops.attest import verify_attestation
from mloci.store import Session
from mloci.trust.dsse import sign_envelope
from mloci.trust.intoto import STATEMENT_TYPE
from mloci.trust.keys import load_private_key
from mloci.types import annotations as ann
from mloci.types.blob import Blob
from mloci.types.kinds import TEST_RESULT_PREDICATE
from mloci.types.manifest import Descriptor, canonical_json
from mloci.types.mediatype import DSSE_ENVELOPE
from mloci.types.reference import Reference

TEST_RESULT_V01: Final = TEST_RESULT_PREDICATE
_LAYER_TITLE = "test-result.dsse.json"


def result_statement(report: ContractReport, *, url: str | None = None) -> dict[str, Any]:
    """The in-toto Statement v1 with a Test Result v0.1 predicate for a report on a pulled digest."""
    if report.reference is None or report.digest is None:
        raise UsageError("only results for a pushed artifact (REF) can be attested, not for a directory")
    predicate: dict[str, Any] = {
        "result": "PASSED" if report.passed else "FAILED",
        "configuration": [
            {
                "name": "manifest.json",
                "digest": {"sha256": report.manifest_sha256},
                "annotations": {"tests": [r.name for r in report.results]},
            }
        ],
        "passedTests": [r.name for r in report.results if r.passed],
        "warnedTests": [],
        "failedTests": [r.name for r in report.results if not r.passed],
        "mloci": {
            "tests": [r.to_json() for r in report.results],
            "environment": report.environment,
            "startedOn": report.to_json()["startedOn"],
            "finishedOn": report.to_json()["finishedOn"],
        },
    }
    if url:
        predicate["url"] = url
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": report.reference.name,
                "digest": {report.digest.algorithm: report.digest.encoded},
            }
        ],
        "predicateType": TEST_RESULT_V01,
        "predicate": predicate,
    }


@dataclass(frozen=True)
class AttachedResults:
    statement: dict[str, Any]
    keyid: str
    attached: AttachResult

    def to_json(self) -> dict[str, Any]:
        return {
            "attestation": str(self.attached.reference),
            "attestationDigest": str(self.attached.digest),
            "predicateType": TEST_RESULT_V01,
            "keyid": self.keyid,
        }


def attach_results(
    report: ContractReport,
    key_path: Path,
    password: bytes | None,
    *,
    session: Session | None = None,
) -> AttachedResults:
    """Sign the report (passing or not) and attach it to exactly the digest that was tested."""
    key = load_private_key(key_path, password)
    statement = result_statement(report, url=ci_run_url())
    envelope = sign_envelope(canonical_json(statement), key)
    data = envelope.to_json()
    layer = Descriptor.of_bytes(
        DSSE_ENVELOPE, data, annotations={ann.PREDICATE_TYPE: TEST_RESULT_V01, ann.TITLE: _LAYER_TITLE}
    )
    assert report.reference is not None and report.digest is not None  # noqa: S101  (checked above)
    attached = attach_blob(
        report.reference.pinned(report.digest),
        Blob(layer, data=data),
        artifact_type=DSSE_ENVELOPE,
        annotations={ann.PREDICATE_TYPE: TEST_RESULT_V01},
        session=session,
    )
    return AttachedResults(statement, envelope.signatures[0].keyid, attached)


# -- what a policy accepts -----------------------------------------------------------------------


def _latency_problems(
    predicate: Mapping[str, Any], bounds: Mapping[str, Mapping[str, float | None]]
) -> list[str]:
    if not bounds:
        return []
    extension = predicate.get("mloci")
    tests = extension.get("tests") if isinstance(extension, dict) else None
    measured = [
        t.get("measurements") or {}
        for t in (tests if isinstance(tests, list) else [])
        if isinstance(t, dict) and t.get("kind") == "latency"
    ]
    if not measured:
        return ["the attested results hold no latency measurement"]
    problems = []
    for values in measured:
        for metric, bound in bounds.items():
            value = values.get(metric)
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"latency {metric} was not measured")
                continue
            low, high = bound.get("min"), bound.get("max")
            if high is not None and value > high:
                problems.append(f"latency {metric} {value:g} > max {high:g}")
            if low is not None and value < low:
                problems.append(f"latency {metric} {value:g} < min {low:g}")
    return problems


def passing_results(
    reference: Reference,
    keys: list[Path],
    *,
    latency: Mapping[str, Mapping[str, float | None]],
    session: Session | None = None,
) -> tuple[bool, str]:
    """Whether a test-result attestation signed by one of ``keys`` says the tests of exactly this
    digest PASSED, within the ``latency`` bounds (metric → {min, max}); and why, in one line."""
    reasons: list[str] = []
    for key in keys:
        try:
            verified = verify_attestation(reference, key, predicate_type=TEST_RESULT_V01, session=session)
        except MlociError as exc:
            reasons.append(f"{key.name}: {exc.message}")
            continue
        for attestation in verified.attestations:
            predicate = attestation.statement.get("predicate")
            if not isinstance(predicate, dict):
                reasons.append(f"{key.name}: attestation {attestation.digest.short} has no predicate")
                continue
            if predicate.get("result") != "PASSED":
                failed = predicate.get("failedTests")
                names = ", ".join(str(n) for n in failed) if isinstance(failed, list) else "?"
                reasons.append(f"{key.name}: the attested run {predicate.get('result')} ({names})")
                continue
            problems = _latency_problems(predicate, latency)
            if problems:
                reasons.append(f"{key.name}: {'; '.join(problems)}")
                continue
            passed = predicate.get("passedTests")
            names = ", ".join(str(n) for n in passed) if isinstance(passed, list) else ""
            return True, f"passing tests signed by {key.name} ({names})"
    return False, "; ".join(reasons) or "no test results attested"
