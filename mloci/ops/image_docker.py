"""The Docker-engine path for inference images: ``docker build`` with the bundle in the context.

For teams whose Dockerfile does more than copy files. Uses the ``docker`` SDK (install
``mloci[docker]``); the daemon builds (classic builder), tags ``<version>-<git sha>`` and pushes,
and the pushed digest is reported. The daemonless builder remains the reproducible default.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloci.bundle.git import git_state
from mloci.bundle.load import load_bundle
from mloci.bundle.pack import pack, version_tag, with_git
from mloci.errors import MlociError, UnavailableError, UsageError
from mloci.types import annotations as ann
from mloci.types.digest import Digest
from mloci.types.reference import Reference


@dataclass(frozen=True)
class DockerBuildResult:
    reference: Reference
    digest: Digest | None
    image_id: str
    model_digest: Digest

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": str(self.digest) if self.digest else None,
            "imageId": self.image_id,
            "model": str(self.model_digest),
        }


def _client() -> Any:
    try:
        import docker  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise UsageError(
            "the Docker engine path needs the docker SDK", hint="pip install 'mloci[docker]'"
        ) from None
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        # Checked here: the SDK leaks its socket when connecting to a missing path.
        raise UnavailableError(
            f"no Docker daemon is reachable ({host} does not exist)", hint="start dockerd or set DOCKER_HOST"
        )
    client = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for "no daemon"
        if client is not None:
            client.close()
        raise UnavailableError(
            f"no Docker daemon is reachable ({type(exc).__name__})", hint="start dockerd or set DOCKER_HOST"
        ) from None
    return client


def docker_build(
    bundle_path: Path,
    repository: Reference,
    *,
    dockerfile: Path,
    push: bool = True,
    build_args: dict[str, str] | None = None,
) -> DockerBuildResult:
    """Build ``dockerfile`` with the bundle copied into the context as ``model/``; tag, push, report."""
    bundle = with_git(load_bundle(bundle_path), git_state(bundle_path))
    model_digest = pack(bundle).digest
    manifest = bundle.manifest
    tag = version_tag(manifest.version) + (f"-{manifest.git_sha[:7]}" if manifest.git_sha else "")
    if repository.registry is None:
        raise UsageError("the Docker path pushes to a registry: name one in --repo")
    target = f"{repository.name}:{tag}"
    client = _client()
    try:
        return _build_and_push(
            client, bundle.root, manifest, target, tag, repository, dockerfile, push, build_args, model_digest
        )
    finally:
        client.close()


def _build_and_push(
    client: Any,
    root_dir: Path,
    manifest: Any,
    target: str,
    tag: str,
    repository: Reference,
    dockerfile: Path,
    push: bool,
    build_args: dict[str, str] | None,
    model_digest: Digest,
) -> DockerBuildResult:
    with tempfile.TemporaryDirectory(prefix="mloci-docker-") as context:
        root = Path(context)
        shutil.copytree(root_dir, root / "model", ignore=shutil.ignore_patterns(".*", "__pycache__"))
        shutil.copy2(dockerfile, root / "Dockerfile")
        args = {
            "MODEL_NAME": manifest.name,
            "MODEL_VERSION": manifest.version,
            "MODEL_DIGEST": str(model_digest),
            **(build_args or {}),
        }
        labels = {
            ann.VERSION: manifest.version,
            ann.TITLE: manifest.name,
            ann.MODEL_DIGEST: str(model_digest),
            **({ann.REVISION: manifest.git_sha} if manifest.git_sha else {}),
        }
        try:
            image, _ = client.images.build(path=str(root), tag=target, buildargs=args, labels=labels, rm=True)
        except Exception as exc:
            raise MlociError(f"docker build failed: {str(exc).splitlines()[0]}") from None
    digest: Digest | None = None
    if push:
        for line in client.images.push(repository.name, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise MlociError(f"docker push failed: {line['error']}")
            aux = line.get("aux") or {}
            if "Digest" in aux:
                digest = Digest.parse(aux["Digest"])
    pinned = repository.with_tag(tag).with_digest(digest)
    return DockerBuildResult(pinned, digest, str(image.id), model_digest)
