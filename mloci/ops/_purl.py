"""Package URLs (purl) for what mloci describes: OCI artifacts and pinned Python requirements."""

from __future__ import annotations

from packageurl import PackageURL
from packaging.requirements import Requirement

from mloci.types.digest import Digest
from mloci.types.reference import Reference


def oci_purl(name: str, digest: Digest, reference: Reference | None = None) -> str:
    """``pkg:oci/<name>@<digest>[?repository_url=<registry>/<repository>]`` (purl-spec, type ``oci``).

    The purl name is the last component of the repository (``name`` for a bundle not pushed
    yet). The local store has no URL, so an artifact there (or a bundle not pushed yet) gets no
    ``repository_url``; the digest alone identifies it.
    """
    qualifiers: dict[str, str] = {}
    if reference is not None:
        name = reference.repository
        if reference.registry is not None:
            qualifiers["repository_url"] = reference.name
    return str(
        PackageURL(
            type="oci", name=name.rsplit("/", 1)[-1].lower(), version=str(digest), qualifiers=qualifiers
        )
    )


def pypi_purl(requirement: str) -> tuple[str, str, str] | None:
    """(name, version, purl) of a pinned requirement ``name==version``; None when it is not pinned."""
    req = Requirement(requirement)
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
        return None
    version = specs[0].version
    purl = PackageURL(type="pypi", name=req.name, version=version)
    return purl.name, version, str(purl)
