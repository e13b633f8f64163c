"""Where registry credentials come from, the way Docker users expect.

Order: ``MLOCI_USERNAME``/``MLOCI_PASSWORD`` (for CI), then the docker config
(``$DOCKER_CONFIG/config.json``, default ``~/.docker/config.json``): ``credHelpers`` for
the registry, else ``credsStore``, else the ``auths`` entry (``auth`` or ``identitytoken``).
``mloci login`` / ``logout`` write the same file, so docker, skopeo, oras and mloci share logins.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mloci.atomic import write_atomic
from mloci.errors import AuthError, MlociError
from mloci.store.registry.auth import Credentials
from mloci.types import jsontext

_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = jsontext.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read docker config {path}: {exc}") from None
    except RecursionError:
        raise AuthError(f"cannot read docker config {path}: nested too deeply") from None
    if not isinstance(data, dict):
        # Refused rather than read as empty: a login would otherwise overwrite the file.
        raise AuthError(f"docker config {path} is not a JSON object", hint="fix or remove it")
    return data


def _keys_for(registry: str) -> list[str]:
    """Spellings of ``registry`` found in docker configs (with scheme, with /v1/ for Docker Hub)."""
    if registry in _DOCKER_HUB_KEYS:
        return list(_DOCKER_HUB_KEYS)
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]


def _helper(name: str, action: str, payload: str) -> subprocess.CompletedProcess[str]:
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise AuthError(
            f"the docker config names credential helper {name!r}, but docker-credential-{name} is not on PATH"
        )
    try:
        return subprocess.run(
            [program, action], input=payload, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise AuthError(f"credential helper docker-credential-{name} failed: {type(exc).__name__}") from None


def _from_helper(name: str, registry: str) -> Credentials | None:
    for key in _keys_for(registry)[:2]:
        done = _helper(name, "get", key)
        if done.returncode != 0:
            continue  # "credentials not found" is a normal answer
        try:
            data = jsontext.loads(done.stdout)
        except ValueError:
            raise AuthError(
                f"credential helper docker-credential-{name} answered with invalid JSON"
            ) from None
        username, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
        # Docker's convention: the username "<token>" marks an identity (refresh) token.
        if username == "<token>":
            return Credentials(identity_token=secret)
        return Credentials(username=username, password=secret)
    return None


def _from_auths(entry: dict[str, Any]) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials(
            username=str(entry.get("username", "")), identity_token=str(entry["identitytoken"])
        )
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"])).decode()
        except (ValueError, UnicodeDecodeError):
            raise AuthError("a docker config 'auth' entry is not valid base64 of user:password") from None
        username, _, password = decoded.partition(":")
        return Credentials(username=username, password=password)
    if entry.get("username"):
        return Credentials(username=str(entry["username"]), password=str(entry.get("password", "")))
    return None


def lookup(registry: str) -> Credentials | None:
    """Credentials for ``registry``, or None for anonymous access."""
    username = os.environ.get("MLOCI_USERNAME", "")
    if username:
        return Credentials(username=username, password=os.environ.get("MLOCI_PASSWORD", ""))
    path = config_path()
    config = _read_config(path)
    helpers = _section(config, "credHelpers", dict, path)
    for key in _keys_for(registry):
        if key in helpers:
            return _from_helper(_helper_name(helpers[key], path), registry)
    if config.get("credsStore"):
        found = _from_helper(_helper_name(config["credsStore"], path), registry)
        if found:
            return found
    auths = _section(config, "auths", dict, path)
    for key in _keys_for(registry):
        if isinstance(auths.get(key), dict):
            return _from_auths(auths[key])
    return None


def _section(config: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = config.get(key) or kind()
    if not isinstance(value, kind):
        raise AuthError(f"docker config {path}: {key!r} must be a JSON object", hint="fix or remove it")
    return value


def _helper_name(value: Any, path: Path) -> str:
    """A credential helper's name: a plain word, so ``docker-credential-<name>`` is looked up on PATH only."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise AuthError(f"docker config {path}: {str(value)[:40]!r} is not a credential helper name")
    return value


def _write_config(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, (json.dumps(config, indent="\t") + "\n").encode(), mode=0o600)


def store(registry: str, credentials: Credentials) -> str:
    """Save credentials as ``docker login`` would; return where they went (for the message)."""
    path = config_path()
    config = _read_config(path)
    helper = _section(config, "credHelpers", dict, path).get(registry) or config.get("credsStore")
    if helper:
        helper = _helper_name(helper, path)
        payload = json.dumps(
            {"ServerURL": registry, "Username": credentials.username, "Secret": credentials.password}
        )
        done = _helper(str(helper), "store", payload)
        if done.returncode != 0:
            raise AuthError(f"credential helper docker-credential-{helper} could not store the login")
        return f"credential helper docker-credential-{helper}"
    auths = _section(config, "auths", dict, path)
    config["auths"] = auths
    raw = f"{credentials.username}:{credentials.password}".encode()
    auths[registry] = {"auth": base64.b64encode(raw).decode()}
    try:
        _write_config(path, config)
    except OSError as exc:
        raise MlociError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return str(path)


def remove(registry: str) -> bool:
    """Forget the login for ``registry``; False when there was none."""
    path = config_path()
    config = _read_config(path)
    helper = _section(config, "credHelpers", dict, path).get(registry) or config.get("credsStore")
    erased = False
    if helper:
        with contextlib.suppress(AuthError):
            erased = _helper(_helper_name(helper, path), "erase", registry).returncode == 0
    auths = _section(config, "auths", dict, path)
    keys = [key for key in _keys_for(registry) if key in auths]
    for key in keys:
        del auths[key]
    if keys:
        try:
            _write_config(path, config)
        except OSError as exc:
            raise MlociError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return erased or bool(keys)
