"""The Python API: a :class:`Client` holding one session (connection pools, tokens) for many calls.

Every method is a use case of :mod:`mloci.ops` with the same behaviour as the CLI command of the
same name; the CLI calls the same functions. References may be given as strings or
:class:`~mloci.types.Reference`, paths as strings or ``os.PathLike``; options are keyword-only.
Methods raise only :class:`~mloci.errors.MlociError` subclasses.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from mloci.errors import MlociError
from mloci.store import Session, StoreOptions
from mloci.types.reference import Reference

if TYPE_CHECKING:
    from mloci.contract.environment import CheckReport
    from mloci.contract.run import ContractReport
    from mloci.ops.archive import ExportResult, ImportResult
    from mloci.ops.attach import AttachResult, DiscoverResult
    from mloci.ops.attest import AttestationVerifyResult, AttestResult
    from mloci.ops.diff import Diff
    from mloci.ops.doctor import Report
    from mloci.ops.gc import GcPlan
    from mloci.ops.image import ImageResult
    from mloci.ops.inspection import Artifact
    from mloci.ops.listing import ModelVersion
    from mloci.ops.policy import PolicyReport
    from mloci.ops.progress import TransferListener
    from mloci.ops.promote import History, PromotionResult
    from mloci.ops.pull import PullResult
    from mloci.ops.push import PushResult
    from mloci.ops.reserve import ReserveResult
    from mloci.ops.sbom import SbomResult
    from mloci.ops.sign import SignResult, VerifyResult
    from mloci.ops.tag import TagResult
    from mloci.ops.transfer import CopyResult
    from mloci.ops.validate import ValidationReport
    from mloci.ops.wheel import ReleasePullResult, ReleasePushResult, YankResult
    from mloci.project import ProjectConfig

RefLike = str | Reference
PathLike = str | os.PathLike[str]
P = ParamSpec("P")
T = TypeVar("T")

PASSWORD_ENV = "MLOCI_KEY_PASSWORD"


def _errors(method: Callable[P, T]) -> Callable[P, T]:
    """Only MlociError leaves a public method: anything else is wrapped, its traceback kept as the cause."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except MlociError:
            raise
        except OSError as exc:
            raise MlociError(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}") from exc
        except Exception as exc:
            raise MlociError(
                f"internal error: {type(exc).__name__}: {exc}", hint="please report this"
            ) from exc

    return wrapper


def _ref(value: RefLike) -> Reference:
    from mloci.ops.refs import parse_reference  # noqa: PLC0415

    return value if isinstance(value, Reference) else parse_reference(value)


def _password(value: str | bytes | None) -> bytes | None:
    if value is None:
        env = os.environ.get(PASSWORD_ENV)
        return env.encode() if env is not None else None
    return value.encode() if isinstance(value, str) else value


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


class Client:
    """One connection pool and token cache per registry, shared by every call (and thread).

    Arguments left out come from the same environment variables the CLI reads
    (``MLOCI_CA_FILE``, ``MLOCI_INSECURE``, ``MLOCI_CONCURRENCY``, ``MLOCI_CHUNK_SIZE``), when
    the client first needs them. Use it as a context manager, or call :meth:`close`::

        with mloci.Client(ca_file="corp-ca.pem", concurrency=8) as client:
            client.push("model_bundle/", "registry.example.com/ml/churn-model")
    """

    def __init__(
        self,
        *,
        ca_file: PathLike | None = None,
        insecure: bool | None = None,
        plain_http: bool | None = None,
        concurrency: int | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self._given = (ca_file, insecure, plain_http, concurrency, chunk_size)
        self._session: Session | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Session:
        """The session behind the client (stores opened on first use)."""
        with self._lock:
            if self._session is None:
                ca_file, insecure, plain_http, concurrency, chunk_size = self._given
                ca = ca_file if ca_file is not None else os.environ.get("MLOCI_CA_FILE")
                self._session = Session(
                    StoreOptions(
                        plain_http=plain_http,
                        insecure=insecure
                        if insecure is not None
                        else os.environ.get("MLOCI_INSECURE", "").lower() in ("1", "true", "yes"),
                        ca_file=os.fspath(ca) if ca else None,
                        concurrency=concurrency or _env_int("MLOCI_CONCURRENCY") or 4,
                        chunk_size=chunk_size or _env_int("MLOCI_CHUNK_SIZE"),
                    )
                )
            return self._session

    def close(self) -> None:
        """Close every connection; the client opens new ones if used again."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- bundles -----------------------------------------------------------------------------

    @_errors
    def validate(self, bundle: PathLike) -> ValidationReport:
        """Check a bundle directory; every problem is reported (``.problems``), none raised."""
        from mloci.ops.validate import validate  # noqa: PLC0415

        return validate(Path(bundle))

    @_errors
    def init(
        self, directory: PathLike, *, name: str | None = None, version: str = "0.1.0", force: bool = False
    ) -> Path:
        """Write a starter ``manifest.json`` into ``directory`` (framework guessed from the files)."""
        from mloci.bundle.init import init_bundle  # noqa: PLC0415

        return init_bundle(Path(directory), name=name, version=version, force=force)

    @_errors
    def push(
        self,
        bundle: PathLike,
        repository: RefLike | None = None,
        *,
        tags: Sequence[str] = (),
        format: Literal["modelpack", "image-volume"] = "modelpack",
        force: bool = False,
        progress: TransferListener | None = None,
        pack: Mapping[str, Literal["tar", "raw"]] | None = None,
    ) -> PushResult:
        """Validate, pack and push a bundle directory; tags ``<version>`` and ``<version>-<sha7>``.

        Without ``repository`` the bundle's name goes to ``$MLOCI_REGISTRY`` or the local store.
        A version tag naming other content is a ConflictError unless ``force``. ``pack`` maps
        directories to ``"tar"`` (one tar layer) or ``"raw"`` (a layer per file), over the
        manifest's ``pack`` section.
        """
        from mloci.ops.push import push  # noqa: PLC0415

        target = str(repository) if repository is not None else None
        return push(
            Path(bundle),
            target,
            format=format,
            session=self.session,
            extra_tags=tags,
            force=force,
            listener=progress,
            pack_overrides=sorted((pack or {}).items()),
        )

    @_errors
    def pull(
        self,
        reference: RefLike,
        output: PathLike,
        *,
        filters: Sequence[str] = (),
        force: bool = False,
        verify_key: PathLike | None = None,
        digest_file: PathLike | None = None,
        progress: TransferListener | None = None,
        connections: int = 1,
    ) -> PullResult:
        """Fetch an artifact into ``output``, every byte verified before anything appears there.

        ``verify_key`` requires a signature by that key first (then exactly the signed digest is
        pulled); ``force`` replaces same-named files mloci did not write, never anything else.
        ``connections`` > 1 downloads blobs of 32 MiB or more in that many parallel byte ranges.
        """
        from mloci.ops.pull import pull  # noqa: PLC0415

        return pull(
            _ref(reference),
            Path(output),
            session=self.session,
            filters=filters,
            force=force,
            listener=progress,
            verify_key=Path(verify_key) if verify_key is not None else None,
            digest_file=Path(digest_file) if digest_file is not None else None,
            connections=connections,
        )

    @_errors
    def export(
        self,
        references: Sequence[RefLike],
        output: PathLike,
        *,
        with_referrers: bool = False,
        compress: bool = False,
    ) -> ExportResult:
        """Write artifacts (with their signatures, SBOMs… when ``with_referrers``) into one
        deterministic OCI image-layout tar; read it with ``oci-archive:PATH`` references."""
        from mloci.ops.archive import export  # noqa: PLC0415

        return export(
            [_ref(r) for r in references],
            Path(output),
            with_referrers=with_referrers,
            compress=compress,
            session=self.session,
        )

    @_errors
    def import_archive(self, archive: PathLike, target: str | None = None) -> ImportResult:
        """Load every artifact of an archive from :meth:`export` into the local store or
        ``target`` (``REGISTRY[/NAMESPACE]``), digests unchanged."""
        from mloci.ops.archive import import_archive  # noqa: PLC0415

        return import_archive(Path(archive), target, session=self.session)

    @_errors
    def inspect(self, reference: RefLike) -> Artifact:
        """An artifact's manifest, bundle manifest, metrics and files, without downloading weights."""
        from mloci.ops.inspection import inspect  # noqa: PLC0415

        return inspect(_ref(reference), session=self.session)

    @_errors
    def versions(self, repository: RefLike) -> list[ModelVersion]:
        """Every artifact a tag names in ``repository``, newest version first, with metrics and aliases."""
        from mloci.ops.listing import list_versions  # noqa: PLC0415

        return list_versions(_ref(repository), session=self.session)

    @_errors
    def diff(self, left: RefLike, right: RefLike) -> Diff:
        """What changed between two artifacts: metadata, metrics, dependencies, files."""
        from mloci.ops.diff import diff  # noqa: PLC0415

        return diff(_ref(left), _ref(right), session=self.session)

    # -- lifecycle ---------------------------------------------------------------------------

    @_errors
    def copy(self, source: RefLike, destination: RefLike, *, with_referrers: bool = False) -> CopyResult:
        """Copy an artifact (digest preserved) across repositories, registries and the local store."""
        from mloci.ops.transfer import copy  # noqa: PLC0415

        return copy(_ref(source), _ref(destination), session=self.session, with_referrers=with_referrers)

    @_errors
    def tag(self, reference: RefLike, *tags: str, force: bool = False) -> TagResult:
        """Point more tags at the same manifest bytes; version tags never move unless ``force``."""
        from mloci.ops.tag import tag  # noqa: PLC0415

        return tag(_ref(reference), tags, session=self.session, force=force)

    @_errors
    def promote(
        self,
        reference: RefLike,
        *,
        to: str,
        reason: str | None = None,
        policy: PathLike | None = None,
        project: ProjectConfig | None = None,
        ci_url: str | None = None,
    ) -> PromotionResult:
        """Move environment ``to``'s alias to exactly this digest, with an audit record in the registry.

        ``project`` defaults to the ``mloci.toml`` (or ``[tool.mloci]``) found from the working
        directory; its environment's policy, or ``policy``, must pass first (else PolicyError).
        """
        from mloci.ops.promote import promote  # noqa: PLC0415

        return promote(
            _ref(reference),
            to,
            project=project if project is not None else _project(),
            reason=reason,
            session=self.session,
            policy=Path(policy) if policy is not None else None,
            ci_url=ci_url,
        )

    @_errors
    def rollback(
        self,
        repository: RefLike | None = None,
        *,
        env: str,
        reason: str | None = None,
        project: ProjectConfig | None = None,
    ) -> PromotionResult:
        """Point ``env``'s alias back at what it named before its current digest was promoted."""
        from mloci.ops.promote import rollback  # noqa: PLC0415

        return rollback(
            _ref(repository) if repository is not None else None,
            env,
            project=project if project is not None else _project(),
            reason=reason,
            session=self.session,
        )

    @_errors
    def history(
        self,
        repository: RefLike | None = None,
        *,
        env: str | None = None,
        project: ProjectConfig | None = None,
    ) -> History:
        """Every promotion recorded in ``repository`` (or ``env``'s repository), newest first."""
        from mloci.ops.promote import history  # noqa: PLC0415

        return history(
            _ref(repository) if repository is not None else None,
            env,
            project=project if project is not None else _project(),
            session=self.session,
        )

    @_errors
    def gc(
        self, repository: RefLike, *, keep_last: int, dry_run: bool = True, grace_seconds: float | None = None
    ) -> GcPlan:
        """Delete all but the ``keep_last`` newest versions that no alias holds (a plan unless ``dry_run=False``)."""
        from mloci.ops.gc import gc  # noqa: PLC0415
        from mloci.store.layout import GC_GRACE_SECONDS  # noqa: PLC0415

        return gc(
            _ref(repository),
            keep_last=keep_last,
            dry_run=dry_run,
            session=self.session,
            grace_seconds=GC_GRACE_SECONDS if grace_seconds is None else grace_seconds,
        )

    # -- trust -------------------------------------------------------------------------------

    @_errors
    def keygen(
        self,
        prefix: PathLike = "cosign",
        *,
        password: str | bytes | None = None,
        allow_unencrypted: bool = False,
    ) -> tuple[Path, Path]:
        """Write ``<prefix>.key`` (encrypted with ``password``, default ``$MLOCI_KEY_PASSWORD``) and ``.pub``."""
        from mloci.ops.sign import generate_keypair  # noqa: PLC0415

        return generate_keypair(Path(prefix), _password(password), allow_unencrypted=allow_unencrypted)

    @_errors
    def sign(
        self,
        reference: RefLike,
        *,
        key: PathLike,
        password: str | bytes | None = None,
        annotations: Mapping[str, str] | None = None,
        format: Literal["bundle", "legacy", "both"] = "bundle",
    ) -> SignResult:
        """Sign the manifest digest with a cosign-compatible key (passphrase default: ``$MLOCI_KEY_PASSWORD``).

        ``format``: a sigstore bundle referrer as cosign v3 writes (default), cosign v2's legacy
        ``.sig`` tag, or both.
        """
        from mloci.ops.sign import sign  # noqa: PLC0415

        return sign(
            _ref(reference),
            Path(key),
            _password(password),
            annotations=annotations,
            format=format,
            session=self.session,
        )

    @_errors
    def verify(
        self,
        reference: RefLike,
        *,
        key: PathLike | None = None,
        identity: str | None = None,
        issuer: str | None = None,
        trusted_root: PathLike | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> VerifyResult:
        """Check that a signature by ``key`` (or keyless, by ``identity`` from ``issuer``) binds the digest.

        Sigstore bundles (cosign v3) and legacy ``.sig`` signatures count; IntegrityError otherwise.
        """
        from mloci.ops.sign import verify  # noqa: PLC0415
        from mloci.trust.keyless import IdentityRule  # noqa: PLC0415

        rule = IdentityRule(identity=identity, issuer=issuer) if identity or issuer else None
        return verify(
            _ref(reference),
            Path(key) if key is not None else None,
            identity=rule,
            trusted_root=Path(trusted_root) if trusted_root is not None else None,
            required_annotations=annotations,
            session=self.session,
        )

    @_errors
    def sbom(self, target: RefLike | PathLike, *, attach: bool = False) -> SbomResult:
        """A CycloneDX SBOM of a bundle directory or an artifact; ``attach`` pushes it as a referrer."""
        from mloci.ops.sbom import sbom  # noqa: PLC0415

        return sbom(str(target) if isinstance(target, Reference) else os.fspath(target), attach=attach,
                    session=self.session)  # fmt: skip

    @_errors
    def attest(
        self, reference: RefLike, *, key: PathLike, password: str | bytes | None = None
    ) -> AttestResult:
        """Sign SLSA provenance (in-toto, DSSE) for the artifact and attach it as a referrer."""
        from mloci.ops.attest import attest  # noqa: PLC0415

        return attest(_ref(reference), Path(key), _password(password), session=self.session)

    @_errors
    def verify_attestation(self, reference: RefLike, *, key: PathLike) -> AttestationVerifyResult:
        """The SLSA provenance attestations on the artifact that verify with ``key``."""
        from mloci.ops.attest import verify_attestation  # noqa: PLC0415

        return verify_attestation(_ref(reference), Path(key), session=self.session)

    @_errors
    def attach(
        self,
        reference: RefLike,
        file: PathLike,
        *,
        artifact_type: str,
        media_type: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> AttachResult:
        """Attach any report (test results, evaluation, scan) to the artifact as an OCI referrer."""
        from mloci.ops.attach import attach_file  # noqa: PLC0415

        return attach_file(
            _ref(reference),
            Path(file),
            artifact_type=artifact_type,
            media_type=media_type,
            annotations=annotations,
            session=self.session,
        )

    @_errors
    def discover(self, reference: RefLike, *, artifact_type: str | None = None) -> DiscoverResult:
        """The tree of everything attached to the artifact (signatures, SBOMs, attestations, records)."""
        from mloci.ops.attach import discover  # noqa: PLC0415

        return discover(_ref(reference), artifact_type=artifact_type, session=self.session)

    @_errors
    def check_policy(self, reference: RefLike, policy: PathLike) -> PolicyReport:
        """Evaluate every rule of a policy file against the artifact; ``.passed`` and ``.failures``."""
        from mloci.ops.policy import check  # noqa: PLC0415

        return check(Path(policy), _ref(reference), session=self.session)

    @_errors
    def run_tests(
        self,
        target: RefLike | PathLike,
        *,
        trust_pickle: bool = False,
        only: Sequence[str] = (),
        verify_key: PathLike | None = None,
    ) -> ContractReport:
        """Run the tests a bundle declares (a directory, or a reference pulled verified into a
        temporary directory); ``.passed``, ``.failures`` and the measurements of each test."""
        from mloci.contract.run import run_reference_tests, run_tests  # noqa: PLC0415

        if not isinstance(target, Reference) and Path(target).is_dir():
            return run_tests(Path(target), trust_pickle=trust_pickle, only=only)
        return run_reference_tests(
            target if isinstance(target, Reference) else _ref(os.fspath(target)),
            session=self.session,
            verify_key=Path(verify_key) if verify_key is not None else None,
            trust_pickle=trust_pickle,
            only=only,
        )

    @_errors
    def check_environment(self, target: RefLike | PathLike, *, python: PathLike | None = None) -> CheckReport:
        """Whether this interpreter (or ``python``) and machine meet the bundle's contract;
        ``.passed`` and ``.mismatches``."""
        from mloci.contract.environment import check_target  # noqa: PLC0415

        if isinstance(target, Reference):
            where: Path | Reference = target
        else:
            where = Path(target) if Path(target).is_dir() else _ref(os.fspath(target))
        return check_target(where, python=os.fspath(python) if python else None, session=self.session)

    # -- images, packages, registries ----------------------------------------------------------

    @_errors
    def build_image(
        self,
        source: RefLike | PathLike,
        *,
        base: RefLike,
        repository: RefLike,
        cmd: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        push: bool = True,
    ) -> ImageResult:
        """Build a daemonless inference image carrying the model (a bundle directory or a model reference)."""
        from mloci.ops.image import ImageSpec, build_image  # noqa: PLC0415

        spec = ImageSpec(
            base=_ref(base),
            repository=_ref(repository),
            cmd=cmd,
            entrypoint=entrypoint,
            env=dict(env or {}),
            labels=dict(labels or {}),
        )
        text = str(source) if isinstance(source, Reference) else os.fspath(source)
        return build_image(text, spec, session=self.session, push=push)

    @_errors
    def push_wheels(self, files: Sequence[PathLike], namespace: str) -> list[ReleasePushResult]:
        """Publish wheels and sdists under ``namespace`` (one artifact per project version)."""
        from mloci.ops.wheel import push_distributions  # noqa: PLC0415

        return push_distributions([Path(f) for f in files], namespace, session=self.session)

    @_errors
    def pull_wheel(
        self, spec: str, dest: PathLike, *, filters: Sequence[str] = (), pre: bool = False
    ) -> ReleasePullResult:
        """Download a release (``REGISTRY/NS/project==version``) into ``dest``, verified."""
        from mloci.ops.wheel import pull_release  # noqa: PLC0415

        return pull_release(spec, Path(dest), filters=filters, pre=pre, session=self.session)

    @_errors
    def yank(self, spec: str, *, reason: str | None = None, undo: bool = False) -> YankResult:
        """Mark a release yanked (PEP 592), or un-yank it with ``undo``."""
        from mloci.ops.wheel import yank  # noqa: PLC0415

        return yank(spec, reason=reason, undo=undo, session=self.session)

    @_errors
    def reserve_projects(self, namespace: str, names: Sequence[str]) -> list[ReserveResult]:
        """Reserve Python project names under ``namespace``: the package index serves them only from the registry."""
        from mloci.ops.reserve import reserve  # noqa: PLC0415

        return reserve(namespace, list(names), session=self.session)

    @_errors
    def doctor(self, registry: str) -> Report:
        """What a registry supports: auth, chunked uploads, OCI 1.1, referrers, mounts, deletes."""
        from mloci.ops.doctor import doctor  # noqa: PLC0415

        return doctor(registry, session=self.session)

    @_errors
    def login(self, registry: str, username: str, password: str) -> str:
        """Check credentials against the registry and store them as ``docker login`` does; return where."""
        from mloci.ops.login import login  # noqa: PLC0415

        return login(registry, username, password, options=self.session.options)

    @_errors
    def logout(self, registry: str) -> bool:
        """Forget the stored login for ``registry``; False when there was none."""
        from mloci.ops.login import logout  # noqa: PLC0415

        return logout(registry)


def _project() -> ProjectConfig | None:
    from mloci.project import load_project  # noqa: PLC0415

    return load_project()


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client the top-level functions (``mloci.push`` …) share."""
    global _default  # noqa: PLW0603  (one lazily created process-wide client)
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default
