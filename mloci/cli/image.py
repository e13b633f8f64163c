from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mloci.cli._output import emit_json, printable
from mloci.cli.options import json_option, parse_pairs, registry_options, session_from, upload_options
from mloci.errors import UsageError
from mloci.ops.image import ImageSpec, build_image, split_command
from mloci.ops.refs import parse_reference


@click.group("image")
def image_group() -> None:
    """Inference images that carry a model, tagged <version>-<git sha>."""


@image_group.command("build")
@click.argument("source")
@click.option(
    "--base", help="Base image, ideally pinned: REGISTRY/python:3.12-slim@sha256:… (daemonless engine)."
)
@click.option(
    "--repo", "repository", required=True, help="Where the image goes, e.g. REGISTRY/ml/churn-infer."
)
@click.option("--cmd", help='Command, e.g. "python serve.py" (split like a shell).')
@click.option("--entrypoint", help="Entrypoint (split like a shell).")
@click.option(
    "--app", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Application directory."
)
@click.option("--app-path", default="/app", show_default=True, help="Where --app goes in the image.")
@click.option("--model-root", default="/models", show_default=True, help="The model goes to <root>/<name>.")
@click.option("--env", "env", multiple=True, help="KEY=VALUE environment variable (repeatable).")
@click.option("--port", "ports", multiple=True, help="Port to expose, e.g. 8080 (repeatable).")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE label (repeatable).")
@click.option("--source-url", help="org.opencontainers.image.source (the code repository URL).")
@click.option(
    "--push/--no-push", default=True, show_default=True, help="Push to --repo, or keep in the local store."
)
@click.option(
    "--engine",
    type=click.Choice(["daemonless", "docker"]),
    default="daemonless",
    show_default=True,
    help="Build without a daemon (reproducible), or with a Docker daemon and a Dockerfile.",
)
@click.option(
    "--dockerfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="For --engine docker."
)
@registry_options
@upload_options
@json_option
def build_command(
    source: str,
    base: str | None,
    repository: str,
    cmd: str | None,
    entrypoint: str | None,
    app: Path | None,
    app_path: str,
    model_root: str,
    env: tuple[str, ...],
    ports: tuple[str, ...],
    labels: tuple[str, ...],
    source_url: str | None,
    push: bool,
    engine: str,
    dockerfile: Path | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Build an inference image from SOURCE (a bundle directory or a model reference).

    The model's files go to <model-root>/<name> with MODEL_PATH, MODEL_NAME and MODEL_DIGEST set;
    labels name the model digest and the base image, so one can be found from the other.
    """
    session = session_from(kw)
    if engine == "docker":
        if dockerfile is None:
            raise UsageError("--engine docker needs --dockerfile")
        from mloci.ops.image_docker import docker_build  # noqa: PLC0415  (optional docker SDK)

        docker_result = docker_build(
            Path(source), parse_reference(repository), dockerfile=dockerfile, push=push
        )
        if as_json:
            emit_json(docker_result.to_json())
        else:
            click.echo(str(docker_result.reference))
        return
    if base is None:
        raise UsageError("--base is required (the image to build on)")
    spec = ImageSpec(
        base=parse_reference(base),
        repository=parse_reference(repository),
        cmd=split_command(cmd),
        entrypoint=split_command(entrypoint),
        app=app,
        app_path=app_path,
        model_root=model_root,
        env=parse_pairs(env, "--env"),
        ports=ports,
        labels=parse_pairs(labels, "--label"),
        source_url=source_url,
    )
    result = build_image(source, spec, session=session, push=push)
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(printable(f"model {result.model_digest} on {', '.join(result.platforms)}"), err=True)
        click.echo(str(result.reference))
