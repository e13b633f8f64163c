"""Policy gates: what an artifact must prove before it may enter an environment.

A policy is a YAML file validated (with jsonschema) against ``schemas/policy.schema.json``,
which is generated from :class:`Policy`. Every rule is evaluated and explained, pass or fail;
``promote --policy`` refuses to move an alias when any rule fails and names each one::

    signatures: {keys: [keys/mloci.pub], minimum: 1}
    require: [sbom, provenance]          # referrers that must be attached
    metrics: ["auc >= 0.80", "latency_p99_ms <= 50"]
    fields: [git_sha, license, governance.owners]
    licenses: [Apache-2.0, MIT]
    max_age: 30d
    require: [tests]                     # a signed attestation of passing tests for this digest
    tests: {keys: [keys/ci.pub], latency: {p99_ms: {max: 20}}}
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mloci.errors import MlociError, PolicyError, UsageError
from mloci.ops.inspection import Artifact, inspect
from mloci.ops.referrers import list_referrers
from mloci.store import Session, scoped
from mloci.types import annotations as ann
from mloci.types import mediatype
from mloci.types.kinds import TEST_RESULT_PREDICATE, requirement_types
from mloci.types.manifest import Descriptor
from mloci.types.policy import AGE_PATTERN, Policy
from mloci.types.reference import Reference

_METRIC_RULE = (
    r"^\s*([A-Za-z0-9_.:/-]+)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$"
)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip

# What `require:` names mean, as referrer artifact types (any one matches).
REQUIREMENT_TYPES: dict[str, tuple[str, ...]] = requirement_types()


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class PolicyReport:
    reference: str
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "passed": self.passed,
            "rules": [r.to_json() for r in self.results],
        }


def policy_schema() -> dict[str, Any]:
    return Policy.model_json_schema(by_alias=True, mode="validation")


def load_policy(path: Path) -> tuple[Policy, Path]:
    """The policy in ``path`` (YAML), schema-checked; returns it with the directory keys are relative to."""
    try:
        if path.stat().st_size > _MAX_POLICY_SIZE:
            raise UsageError(
                f"policy {path} is larger than {_MAX_POLICY_SIZE >> 10} KiB; a policy is a few lines"
            )
        text = path.read_bytes().decode("utf-8")
        if _flow_depth(text) > _MAX_POLICY_DEPTH:
            # PyYAML parses recursively: deep nesting is slow before it fails. A policy is shallow.
            raise UsageError(f"policy {path} is nested too deeply")
        document = yaml.safe_load(text)
    except OSError as exc:
        raise UsageError(f"cannot read policy {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"policy {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"policy {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise UsageError(f"policy {path} is nested too deeply") from None
    if _too_big(document):
        # YAML aliases can make a few lines stand for billions of values ("billion laughs").
        raise UsageError(
            f"policy {path} holds more than {_MAX_POLICY_VALUES} values (after expanding aliases)"
        )
    document = document or {}
    import jsonschema  # noqa: PLC0415  (its import builds an RFC 3987 grammar: ~1.7 s, so only when a policy is read)

    validator = jsonschema.Draft202012Validator(policy_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UsageError(f"policy {path}: {where}: {first.message}{more}")
    return Policy.model_validate(document), path.parent


_MAX_POLICY_SIZE = 64 << 10
_MAX_POLICY_VALUES = 10_000
_MAX_POLICY_DEPTH = 32


def _flow_depth(text: str) -> int:
    """How deeply YAML flow collections ('[', '{') nest in ``text`` (a bound, quoting aside)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _too_big(document: Any) -> bool:
    """Whether ``document`` holds more than _MAX_POLICY_VALUES values, counting shared (aliased) ones each time."""
    count = 0
    stack = [document]
    while stack:
        item = stack.pop()
        count += 1
        if count > _MAX_POLICY_VALUES:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _field(document: dict[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _age_limit(text: str) -> timedelta:
    match = re.fullmatch(AGE_PATTERN, text)
    if match is None:  # the schema has already checked this
        raise UsageError(f"invalid max_age {text!r}")
    if match.group(3):
        return timedelta(days=int(match.group(3)))
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _check_metrics(policy: Policy, info: Artifact) -> list[RuleResult]:
    results = []
    for rule in policy.metrics:
        match = re.fullmatch(_METRIC_RULE, rule)
        if match is None:
            results.append(RuleResult(f"metrics: {rule}", False, "not of the form 'name >= number'"))
            continue
        name, op, threshold = match.group(1), match.group(2), float(match.group(3))
        value = info.metrics.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            results.append(RuleResult(f"metrics: {rule}", False, f"metric {name!r} is not recorded"))
            continue
        passed = _OPERATORS[op](float(value), threshold)
        results.append(RuleResult(f"metrics: {rule}", passed, f"{name} = {value}"))
    return results


def _check_fields(policy: Policy, info: Artifact) -> list[RuleResult]:
    document = info.bundle.to_document() if info.bundle else {}
    results = []
    for name in policy.fields:
        value = _field(document, name)
        present = value not in (None, "", [], {})
        results.append(
            RuleResult(f"fields: {name}", present, "set" if present else "missing from the manifest")
        )
    return results


def _check_license(policy: Policy, info: Artifact) -> list[RuleResult]:
    if not policy.licenses:
        return []
    license_ = (info.bundle.license if info.bundle else None) or info.annotations.get(ann.LICENSES)
    allowed = license_ in policy.licenses
    detail = f"{license_} is {'allowed' if allowed else 'not allowed'}" if license_ else "no license declared"
    return [RuleResult("licenses", bool(license_) and allowed, detail)]


def _check_age(policy: Policy, info: Artifact, now: datetime) -> list[RuleResult]:
    if policy.max_age is None:
        return []
    stamp = info.bundle.train_time if info.bundle else None
    if not stamp:
        return [RuleResult(f"max_age: {policy.max_age}", False, "train_time is not recorded")]
    trained = stamp
    age = now - trained
    limit = _age_limit(policy.max_age)
    return [RuleResult(f"max_age: {policy.max_age}", age <= limit, f"trained {age.days} days ago")]


# A sigstore bundle referrer's predicate type (cosign specs/BUNDLE_SPEC.md); SLSA provenance ones count.
BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
SLSA_PROVENANCE = "https://slsa.dev/provenance/"


def _provenance_bundles(
    referrers: list[Descriptor], predicate_of: Callable[[Descriptor], str | None] | None
) -> set[str]:
    """Sigstore bundle referrers holding SLSA provenance (``cosign attest`` v3, ``mloci attest``).

    The referrer's ``dev.sigstore.bundle.predicateType`` annotation says which; a bundle without
    it is read (``predicate_of``: the statement's predicate type) — presence, like every
    ``require:``; ``verify-attestation`` and ``tests`` check signatures.
    """
    found: set[str] = set()
    for d in referrers:
        if not (d.artifact_type or "").startswith(mediatype.SIGSTORE_BUNDLE_PREFIX):
            continue
        predicate = d.annotation(BUNDLE_PREDICATE)
        if predicate is None and predicate_of is not None:
            predicate = predicate_of(d)
        if predicate and predicate.startswith(SLSA_PROVENANCE):
            found.add(f"{d.artifact_type} ({predicate})")
    return found


def _check_required(
    policy: Policy,
    referrers: list[Descriptor],
    predicate_of: Callable[[Descriptor], str | None] | None = None,
) -> list[RuleResult]:
    present = {d.artifact_type for d in referrers if d.artifact_type}
    # Signed test results are DSSE envelopes too; they must not pass for provenance.
    provenance = {
        d.artifact_type
        for d in referrers
        if d.artifact_type and d.annotation(ann.PREDICATE_TYPE) != TEST_RESULT_PREDICATE
    }
    results = []
    for name in policy.require:
        if name == "tests":
            continue  # a signed verdict, not just an attachment: _check_tests
        accepted = REQUIREMENT_TYPES.get(name, (name,))
        found = sorted((provenance if name == "provenance" else present) & set(accepted))
        if name == "provenance":
            found += sorted(_provenance_bundles(referrers, predicate_of))
        detail = f"attached ({', '.join(found)})" if found else f"no referrer of type {' or '.join(accepted)}"
        results.append(RuleResult(f"require: {name}", bool(found), detail))
    return results


def _check_signatures(policy: Policy, base: Path, reference: Reference, session: Session) -> list[RuleResult]:
    rule = policy.signatures
    if rule is None:
        return []
    from mloci.ops.sign import verify  # noqa: PLC0415  (cryptography loads only when signatures matter)
    from mloci.trust.keyless import IdentityRule  # noqa: PLC0415

    good = []
    reasons = []
    root = None
    if rule.trusted_root:
        root = Path(rule.trusted_root) if Path(rule.trusted_root).is_absolute() else base / rule.trusted_root
    for key in rule.keys:
        path = Path(key) if Path(key).is_absolute() else base / key
        try:
            verify(
                reference,
                path,
                trusted_root=root,
                require_tlog=rule.require_tlog,
                required_annotations=rule.annotations,
                session=session,
            )
            good.append(path.name)
        except MlociError as exc:
            reasons.append(f"{path.name}: {exc.message}")
    for signer in rule.identities:
        try:
            identity = IdentityRule(
                identity=signer.identity,
                identity_regexp=signer.identity_regexp,
                issuer=signer.issuer,
                issuer_regexp=signer.issuer_regexp,
            )
            verify(
                reference,
                identity=identity,
                trusted_root=root,
                required_annotations=rule.annotations,
                session=session,
            )
            good.append(identity.describe())
        except MlociError as exc:
            reasons.append(f"{signer.identity or signer.identity_regexp}: {exc.message}")
    passed = len(good) >= rule.minimum
    total = len(rule.keys) + len(rule.identities)
    detail = f"{len(good)} of {rule.minimum} required signers verified" + (
        f" ({'; '.join(reasons)})" if reasons else ""
    )
    return [RuleResult(f"signatures: {rule.minimum} of {total} signers", passed, detail)]


def _check_tests(policy: Policy, base: Path, reference: Reference, session: Session) -> list[RuleResult]:
    if "tests" not in policy.require:
        return []
    if policy.tests is None:
        return [RuleResult("require: tests", False, "the policy has no 'tests: {keys: [...]}' section")]
    from mloci.contract.evidence import passing_results  # noqa: PLC0415  (cryptography)

    keys = [Path(k) if Path(k).is_absolute() else base / k for k in policy.tests.keys]
    latency: dict[str, dict[str, float | None]] = {
        name: {"min": b.min, "max": b.max} for name, b in policy.tests.latency.items()
    }
    passed, detail = passing_results(reference, keys, latency=latency, session=session)
    return [RuleResult("require: tests", passed, detail)]


def evaluate(
    policy: Policy,
    reference: Reference,
    *,
    base: Path = Path(),
    session: Session | None = None,
    now: datetime | None = None,
) -> PolicyReport:
    """Evaluate every rule of ``policy`` against the artifact ``reference`` names."""
    with scoped(session) as active:
        info = inspect(reference, session=active)
        pinned = info.reference
        referrers: list[Descriptor] = []
        if policy.require:
            referrers = list_referrers(active.store(pinned), pinned, info.digest)

        def predicate_of(entry: Descriptor) -> str | None:
            from mloci.ops.sign import fetch_bundle  # noqa: PLC0415  (only for bundles without annotations)
            from mloci.trust import Rejected  # noqa: PLC0415
            from mloci.trust.bundle import Bundle  # noqa: PLC0415

            repo = pinned.with_tag(None).with_digest(None)
            try:
                return Bundle.from_json(
                    fetch_bundle(active.store(pinned), repo, info.digest, entry)
                ).predicate_type
            except (Rejected, ValueError):
                return None

        results = [
            *_check_signatures(policy, base, pinned, active),
            *_check_required(policy, referrers, predicate_of),
            *_check_tests(policy, base, pinned, active),
            *_check_metrics(policy, info),
            *_check_fields(policy, info),
            *_check_license(policy, info),
            *_check_age(policy, info, now or datetime.now(UTC)),
        ]
    return PolicyReport(str(pinned), tuple(results))


def check(path: Path, reference: Reference, *, session: Session | None = None) -> PolicyReport:
    policy, base = load_policy(path)
    return evaluate(policy, reference, base=base, session=session)


def gate_from_file(path: Path, session: Session | None = None) -> Callable[[Reference, Descriptor], None]:
    """A promotion gate: raises PolicyError naming every failed rule."""
    policy, base = load_policy(path)

    def gate(reference: Reference, descriptor: Descriptor) -> None:
        report = evaluate(policy, reference.pinned(descriptor.digest), base=base, session=session)
        if not report.passed:
            failed = "; ".join(f"{r.rule} ({r.detail})" for r in report.failures)
            raise PolicyError(f"policy {path.name} refused {reference}: {failed}")

    return gate
