"""``mloci serve``: the model catalog (web UI), the REST API and the package index on one port."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from mloci.cli.index import upstream_options, upstream_settings
from mloci.cli.options import parse_pairs, registry_options, store_options
from mloci.errors import UsageError
from mloci.project import Environment, find_project, load_project_file


@click.command("serve")
@click.option("--registry", default=None, help="Registry host[:port] to serve. Default: the local store.")
@click.option("--namespace", default="", help="Repository path the models live under, e.g. 'ml'.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on; 0 picks a free one (printed).",
)
@click.option("--read-only", is_flag=True, help="Refuse every write (package uploads, promotions).")
@click.option(
    "--require-auth",
    is_flag=True,
    help="Every request needs credentials (Basic or Bearer) that the registry accepts.",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the content cache. Default: $MLOCI_HOME/cache.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Seconds a tag list is trusted before the registry is asked again.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="ENV=FILE",
    help="Policy file promotions to ENV must pass (repeatable); a refusal names each failed rule.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="A model to list even when the registry refuses its catalog API (repeatable).",
)
@click.option(
    "--verify-key",
    "verify_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public key (PEM) version pages verify signatures against (repeatable).",
)
@click.option(
    "--verify-identity",
    default=None,
    metavar="SAN",
    help="Certificate identity (e.g. a CI workflow URL) keyless signatures and attestations must carry; "
    "with --verify-issuer.",
)
@click.option(
    "--verify-issuer",
    default=None,
    metavar="URL",
    help="OIDC issuer of --verify-identity, e.g. https://token.actions.githubusercontent.com.",
)
@click.option(
    "--trusted-root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Sigstore trusted_root.json keyless bundles (and transparency-log entries) are checked "
    "against. Default: $MLOCI_TRUSTED_ROOT, else sigstore's.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Project configuration (mloci.toml, or pyproject.toml [tool.mloci]) whose environments the "
    "catalog shows, in order, with their aliases and policies. Default: the one found from the working "
    "directory, if any; without one every alias found is an environment.",
)
@click.option(
    "--registry-timeout",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the registry to answer before a page gives up (503), tried twice.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MLOCI_SERVE_SECRET_FILE",
    default=None,
    help="File holding the secret (32+ bytes, not world-readable) the forms' CSRF tokens are signed "
    "with; give replicas behind one load balancer the same file. Default: a secret of this process "
    "(a restart makes open pages reload). Env: MLOCI_SERVE_SECRET_FILE.",
)
@click.option(
    "--init-image",
    envvar="MLOCI_INIT_IMAGE",
    default=None,
    metavar="REF",
    help="Image with mloci installed that the version page's Kubernetes init-container snippet runs. "
    "Env: MLOCI_INIT_IMAGE.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@upstream_options
@registry_options
def serve_command(
    registry: str | None,
    namespace: str,
    host: str,
    port: int,
    read_only: bool,
    require_auth: bool,
    cache_dir: Path | None,
    refresh: float,
    policies: tuple[str, ...],
    models: tuple[str, ...],
    verify_keys: tuple[Path, ...],
    verify_identity: str | None,
    verify_issuer: str | None,
    trusted_root: Path | None,
    config_path: Path | None,
    registry_timeout: float,
    secret_file: Path | None,
    init_image: str | None,
    log_level: str,
    **kw: Any,
) -> None:
    """Browse models, versions, metrics and promotions in a web UI, with a REST API and a package index.

    Pages: / (models), /models/NAME, /models/NAME/versions/VERSION-OR-DIGEST, /compare?a=&b=,
    /packages/. API: /api/v1/ (OpenAPI document at /api/v1/openapi.json). With --registry the
    PEP 503 index (what `mloci index serve` serves, with the same --upstream options) is at /simple/.

    Reads use the caller's credentials when the request brings some (HTTP Basic, or
    Authorization: Bearer with a registry identity token), else the server's (mloci login, docker
    config, MLOCI_USERNAME/MLOCI_PASSWORD); --require-auth makes every request bring credentials the
    registry accepts. Writes (promote/rollback, package uploads) always use the caller's
    credentials, never the server's. Without --require-auth anyone who can reach the server reads
    with the server's credentials: keep the default 127.0.0.1.

    \b
    Examples:
      mloci serve                                            # the local store
      mloci serve --registry registry.example.com --namespace ml --require-auth
      mloci serve --registry registry.example.com --namespace py --upstream https://pypi.org/simple/
      mloci serve --registry registry.example.com --namespace ml --secret-file /run/secrets/mloci \\
        --init-image registry.example.com/tools/mloci:1.4   # one of several replicas
    """
    try:
        from mloci.catalog import CatalogConfig  # noqa: PLC0415
        from mloci.web.app import ServeConfig, serve  # noqa: PLC0415  (optional dependencies)
        from mloci.web.secret import read_secret  # noqa: PLC0415
    except ImportError as exc:
        raise UsageError(
            f"mloci serve needs {exc.name or 'starlette, uvicorn and jinja2'}",
            hint="pip install 'mloci[serve]'",
        ) from None
    if require_auth and registry is None:
        raise UsageError(
            "--require-auth needs --registry: the local store has no credentials to check",
            hint="serve the local store on 127.0.0.1 only, or serve a registry",
        )
    # A stalled registry must fail a page in seconds: a short timeout, and one retry instead of four.
    upstream = upstream_settings(kw)
    if upstream.get("upstreams") and registry is None:
        raise UsageError("--upstream needs --registry: the package index serves a registry namespace")
    options = replace(store_options(kw), timeout=registry_timeout, retries=1)
    policy_files = {env: Path(path) for env, path in parse_pairs(policies, "--policy").items()}
    for env, path in policy_files.items():
        if not path.is_file():
            raise UsageError(f"--policy {env}={path}: no such file")
    environments = configured_environments(config_path, policy_files)
    if (verify_identity is None) != (verify_issuer is None):
        raise UsageError("give --verify-identity and --verify-issuer together")
    if init_image is not None and (
        not init_image
        or len(init_image) > 512
        or not init_image.isprintable()
        or any(c.isspace() for c in init_image)
    ):
        raise UsageError(f"--init-image {init_image!r}: not an image reference (one word, printable)")
    secret = read_secret(secret_file) if secret_file is not None else None
    catalog = CatalogConfig(
        registry=registry,
        namespace=namespace,
        options=options,
        cache_dir=cache_dir,
        refresh=refresh,
        models=models,
        verify_keys=verify_keys,
        verify_identity=verify_identity,
        verify_issuer=verify_issuer,
        trusted_root=trusted_root,
        environments=environments,
    )
    for name in models:
        catalog.repository(name)
    if registry is not None:
        from mloci.pyindex.app import IndexConfig  # noqa: PLC0415

        IndexConfig(registry=registry, namespace=namespace, options=options, **upstream).check()
    serve(
        ServeConfig(
            catalog=catalog,
            read_only=read_only,
            require_auth=require_auth,
            policies=policy_files,
            upstream=upstream,
            secret=secret,
            init_image=init_image,
        ),
        host=host,
        port=port,
        log_level=log_level,
    )


def configured_environments(path: Path | None, policies: dict[str, Path]) -> tuple[Environment, ...]:
    """The environments of the project configuration at ``path`` (None: the one found from the working
    directory), each with its effective policy; ``policies`` (from --policy) wins and gains theirs.

    A policy path in the configuration is relative to the file that names it.
    """
    found = (path, load_project_file(path)) if path is not None else find_project()
    if found is None:
        return ()
    source, project = found
    environments = []
    for env in project.environments:
        policy = policies.get(env.name)
        if policy is None and env.policy:
            policy = source.parent / env.policy
            if not policy.is_file():
                raise UsageError(f"{source}: environment {env.name!r}: policy {env.policy}: no such file")
            policies[env.name] = policy
        environments.append(env.model_copy(update={"policy": str(policy) if policy else None}))
    return tuple(environments)
