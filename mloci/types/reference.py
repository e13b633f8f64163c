"""Docker/OCI image references: ``[registry/]repository[:tag][@digest]``.

The grammar is distribution's ``reference`` package. A reference without a
registry names the embedded local store (or ``$MLOCI_REGISTRY``, resolved by the
caller), so unlike Docker there is no implicit ``docker.io``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mloci.errors import UsageError
from mloci.types.digest import Digest

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_MAX_NAME = 255
# A reference to one artifact needs a tag or digest: there is no implicit ``latest`` (pushes tag versions).
NO_VERSION_HINT = "add :<tag> or @sha256:<digest>; 'mloci ls REPOSITORY' lists the versions"


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def is_valid_repository(name: str) -> bool:
    return _REPOSITORY.fullmatch(name) is not None and len(name) <= _MAX_NAME


def check_registry_host(host: str, where: str | None = None) -> str:
    """``host[:port]`` as a reference names a registry; UsageError (naming ``where``) when it is not one."""
    place = f" in {where}" if where else ""
    if _DOMAIN.fullmatch(host) is None:
        raise UsageError(
            f"invalid registry host {host!r}{place}",
            hint="expected host[:port], e.g. registry.example.com or 127.0.0.1:5000",
        )
    port = host.rpartition("]")[2].partition(":")[2]
    if port and not 0 < int(port) <= 65535:
        raise UsageError(f"invalid port {port} in registry host {host!r}{place}", hint="ports are 1 to 65535")
    return host


def check_default_registry(value: str, where: str) -> str:
    """``host[:port][/namespace]`` (the form of $MLOCI_REGISTRY), checked; UsageError naming ``where``."""
    host, _, prefix = value.strip("/").partition("/")
    check_registry_host(host, where)
    if prefix and not is_valid_repository(prefix):
        raise UsageError(
            f"invalid namespace {prefix!r} in {where}",
            hint="use lowercase letters, digits and separators '.', '_', '-', '/'",
        )
    return value


def _looks_like_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``registry`` is None for the embedded local store."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str, *, default_registry: str | None = None) -> Reference:
        """Parse ``text``; a name without a registry gets ``default_registry`` (``host[/prefix]``)."""
        original = text
        if not text or text != text.strip():
            raise UsageError(
                f"invalid reference {original!r}", hint="expected [registry/]repository[:tag][@sha256:…]"
            )
        digest = None
        if "@" in text:
            text, _, digest_text = text.partition("@")
            digest = Digest.parse(digest_text)
        tag = None
        last_slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > last_slash:
            text, tag = text[:colon], text[colon + 1 :]
            if not is_valid_tag(tag):
                raise UsageError(
                    f"invalid tag {tag!r} in {original!r}",
                    hint="tags are up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
                )
        registry: str | None = None
        first, sep, rest = text.partition("/")
        if sep and _looks_like_registry(first):
            registry, text = check_registry_host(first, repr(original)), rest
        elif default_registry:
            host, _, prefix = default_registry.strip("/").partition("/")
            where = f"the default registry {default_registry!r} ($MLOCI_REGISTRY)"
            registry = check_registry_host(host, where)
            if not _looks_like_registry(host):
                raise UsageError(
                    f"{host!r} in {where} would be read as a repository name",
                    hint=f"write the registry with its port or domain, e.g. {host}:5000",
                )
            if prefix and not is_valid_repository(prefix):
                raise UsageError(
                    f"invalid namespace {prefix!r} in {where}",
                    hint="use lowercase letters, digits, '.', '_', '-', '/'",
                )
            text = f"{prefix}/{text}" if prefix else text
        if len(text) > _MAX_NAME:
            raise UsageError(
                f"repository name in {original[:60]!r}… is {len(text)} characters long",
                hint=f"registries accept at most {_MAX_NAME}",
            )
        if not is_valid_repository(text):
            raise UsageError(
                f"invalid repository name {text!r} in {original!r}",
                hint="use lowercase letters, digits and separators '.', '_', '-', '/'",
            )
        return cls(registry=registry, repository=text, tag=tag, digest=digest)

    @property
    def is_local(self) -> bool:
        return self.registry is None

    @property
    def name(self) -> str:
        """``registry/repository`` (or just ``repository`` for the local store)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def identifier(self) -> str | None:
        """What to ask a registry for: the digest when pinned, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=tag)

    def with_digest(self, digest: Digest | None) -> Reference:
        return replace(self, digest=digest)

    def pinned(self, digest: Digest) -> Reference:
        """This reference resolved: same name and tag, plus the digest."""
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
