"""Public packages from upstream package indexes, for projects the registry does not hold.

An upstream is any simple repository (PEP 503 HTML or PEP 691 JSON, API version 1.x). Project
pages are fetched with content negotiation (JSON preferred), parsed into :class:`UpstreamProject`
values and cached briefly, as the upstream's ``Cache-Control`` allows. Files are streamed through
and verified against the hash the upstream page published, with the last chunk held back until it
matched, or the client is redirected to them.

Every failure is one :class:`UpstreamError` naming the upstream (without credentials) and the
reason; the index answers it with 502, never with an empty page that would make pip report
"no matching distribution".
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import urllib3
from packaging.version import Version
from urllib3.exceptions import HTTPError

from mloci.errors import UnavailableError, UsageError
from mloci.python.filenames import is_project_name, normalize_name, parse_filename

JSON_V1: Final = "application/vnd.pypi.simple.v1+json"
ACCEPT: Final = f"{JSON_V1}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
MAX_PAGE: Final = 64 << 20  # the largest project pages on pypi.org are a few MiB
_CHUNK: Final = 1 << 20
_MAX_CACHED: Final = 2048
_STRIPES: Final = 64  # locks that make concurrent fetches of one page wait for the first
# Hash names a client can verify with hashlib everywhere, strongest first (PEP 503 allows these).
_VERIFIABLE: Final = ("sha512", "sha384", "sha256", "sha224", "blake2b", "sha1", "md5")
_PREFERRED: Final = ("sha256", *_VERIFIABLE)


class UpstreamError(UnavailableError):
    """An upstream index is unreachable, timed out, or answered something that is not a simple page (HTTP 502)."""


@dataclass(frozen=True)
class UpstreamFile:
    """One file on an upstream project page; ``url`` is absolute."""

    filename: str
    url: str
    hashes: Mapping[str, str]
    requires_python: str | None = None
    core_metadata: Mapping[str, str] | None = None  # hashes of the PEP 658 file; None: none served
    yanked: str | None = None  # None: not yanked; "": yanked without a reason
    size: int | None = None
    upload_time: str | None = None
    provenance: str | None = None  # PEP 740: the upstream's absolute URL of the file's provenance

    @property
    def best_hash(self) -> tuple[str, str] | None:
        """The hash a download is verified with: sha256 when given, else the strongest hashlib knows."""
        return next(((name, self.hashes[name]) for name in _PREFERRED if name in self.hashes), None)


@dataclass(frozen=True)
class UpstreamProject:
    name: str
    upstream: str  # the upstream's URL, without credentials
    files: tuple[UpstreamFile, ...]
    versions: tuple[str, ...] | None = None  # PEP 700, when the upstream said

    def file(self, filename: str) -> UpstreamFile | None:
        return next((f for f in self.files if f.filename == filename), None)


@dataclass
class _Entry:
    expires: float
    value: Any


# -- parsing -------------------------------------------------------------------------------------


def _api_version_ok(version: object, where: str) -> None:
    if version is None:
        return
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise UpstreamError(f"{where}: malformed repository version {version!r}")
    if version.split(".")[0] != "1":
        raise UpstreamError(f"{where}: simple API version {version} is not supported (only 1.x)")


def _check_hash(name: str, value: object, where: str) -> str:
    if not isinstance(value, str) or not value or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise UpstreamError(f"{where}: malformed {name} hash {value!r}")
    if name in hashlib.algorithms_guaranteed:
        expected = hashlib.new(name).digest_size * 2 if name != "shake_128" else None
        if expected and len(value) != expected:
            raise UpstreamError(f"{where}: {name} hash {value!r} has the wrong length")
    return value.lower()


def _absolute(page_url: str, href: str, where: str) -> str:
    """``href`` resolved against the page, without its fragment; UpstreamError when it is no URL."""
    try:
        absolute = urljoin(page_url, href)
        urlsplit(absolute)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise UpstreamError(f"{where}: malformed URL {href!r}: {exc}") from None
    return absolute


def _filename_of(url: str, where: str) -> str:
    if urlsplit(url).scheme not in ("http", "https"):
        raise UpstreamError(f"{where}: file URL {url!r} is not http(s)")
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name or "\\" in name or not name.isprintable():
        raise UpstreamError(f"{where}: file URL {url!r} does not end in a file name")
    return name


def _provenance(page_url: str, value: str | None, where: str) -> str | None:
    if not value:
        return None
    url = _absolute(page_url, value, where)
    if urlsplit(url).scheme not in ("http", "https"):
        raise UpstreamError(f"{where}: provenance URL {value!r} is not http(s)")
    return url


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "meta":
            values = dict(attrs)
            if values.get("name"):
                self.meta[values["name"] or ""] = values.get("content")


def _metadata_attr(value: str | None, where: str) -> Mapping[str, str] | None:
    if value is None:
        return None
    if value.strip().lower() == "true":
        return {}
    name, eq, digest = value.partition("=")
    if not eq:
        raise UpstreamError(f"{where}: malformed data-core-metadata {value!r}")
    return {name.lower(): _check_hash(name, digest, where)}


def parse_html(project: str, page_url: str, text: str, upstream: str) -> UpstreamProject:
    """A PEP 503 project page; UpstreamError when it is not one."""
    where = f"upstream {upstream}: project page of {project}"
    parser = _Anchors()
    try:
        parser.feed(text)
        parser.close()
    except (ValueError, AssertionError) as exc:
        raise UpstreamError(f"{where} is malformed HTML: {exc}") from None
    _api_version_ok(parser.meta.get("pypi:repository-version"), where)
    if not parser.anchors and "<a" not in text.lower() and "<html" not in text.lower():
        raise UpstreamError(f"{where} is not an HTML page")
    files: list[UpstreamFile] = []
    for anchor in parser.anchors:
        href = anchor.get("href")
        if not href:
            continue
        absolute = _absolute(page_url, href, where)
        base, _, fragment = absolute.partition("#")
        hashes: dict[str, str] = {}
        if fragment:
            name, eq, value = fragment.partition("=")
            if not eq:
                raise UpstreamError(f"{where}: malformed hash fragment #{fragment}")
            hashes[name.lower()] = _check_hash(name, value, where)
        metadata = anchor.get("data-core-metadata")
        if metadata is None:
            metadata = anchor.get("data-dist-info-metadata")
        files.append(
            UpstreamFile(
                filename=_filename_of(base, where),
                url=base,
                hashes=hashes,
                requires_python=anchor.get("data-requires-python") or None,
                core_metadata=_metadata_attr(metadata, where),
                yanked=(anchor.get("data-yanked") or "") if "data-yanked" in anchor else None,
                provenance=_provenance(page_url, anchor.get("data-provenance"), where),
            )
        )
    return UpstreamProject(name=project, upstream=upstream, files=tuple(files))


def _str(value: object, key: str, where: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise UpstreamError(f"{where}: {key} is not a string")
    return value


def _hash_map(value: object, key: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise UpstreamError(f"{where}: {key} is not an object")
    return {str(name).lower(): _check_hash(str(name), digest, where) for name, digest in value.items()}


def parse_json(project: str, page_url: str, data: bytes, upstream: str) -> UpstreamProject:
    """A PEP 691 project page; UpstreamError when it is not one."""
    where = f"upstream {upstream}: project page of {project}"
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(f"{where} is malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UpstreamError(f"{where} is not a JSON object")
    meta = document.get("meta")
    if not isinstance(meta, dict) or "api-version" not in meta:
        raise UpstreamError(f"{where} lacks meta.api-version")
    _api_version_ok(meta["api-version"], where)
    raw_files = document.get("files")
    if not isinstance(raw_files, list):
        raise UpstreamError(f"{where}: files is not a list")
    files: list[UpstreamFile] = []
    for index, raw in enumerate(raw_files):
        at = f"{where}: files[{index}]"
        if not isinstance(raw, dict):
            raise UpstreamError(f"{at} is not an object")
        url = _str(raw.get("url"), "url", at, optional=False) or ""
        filename = _str(raw.get("filename"), "filename", at, optional=False) or ""
        if (
            not filename
            or "/" in filename
            or "\\" in filename
            or filename in (".", "..")
            or not filename.isprintable()
        ):
            raise UpstreamError(f"{at}: malformed filename {filename!r}")
        absolute = _absolute(page_url, url, at).partition("#")[0]
        _filename_of(absolute, at)
        metadata_raw = raw.get("core-metadata", raw.get("dist-info-metadata"))
        metadata: Mapping[str, str] | None
        if metadata_raw is None or metadata_raw is False:
            metadata = None
        elif metadata_raw is True:
            metadata = {}
        else:
            metadata = _hash_map(metadata_raw, "core-metadata", at)
        yanked_raw = raw.get("yanked", False)
        if isinstance(yanked_raw, bool):
            yanked = "" if yanked_raw else None
        elif isinstance(yanked_raw, str):
            yanked = yanked_raw
        else:
            raise UpstreamError(f"{at}: yanked is neither a boolean nor a string")
        size = raw.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise UpstreamError(f"{at}: size is not a non-negative integer")
        files.append(
            UpstreamFile(
                filename=filename,
                url=absolute,
                hashes=_hash_map(raw.get("hashes", {}), "hashes", at),
                requires_python=_str(raw.get("requires-python"), "requires-python", at) or None,
                core_metadata=metadata,
                yanked=yanked,
                size=size,
                upload_time=_str(raw.get("upload-time"), "upload-time", at),
                provenance=_provenance(page_url, _str(raw.get("provenance"), "provenance", at), at),
            )
        )
    versions_raw = document.get("versions")
    versions: tuple[str, ...] | None = None
    if versions_raw is not None:
        if not isinstance(versions_raw, list) or not all(isinstance(v, str) for v in versions_raw):
            raise UpstreamError(f"{where}: versions is not a list of strings")
        versions = tuple(versions_raw)
    return UpstreamProject(name=project, upstream=upstream, files=tuple(files), versions=versions)


def parse_project_list(data: bytes, content_type: str, upstream: str) -> list[str]:
    """The normalized project names of an upstream's root page (JSON or HTML)."""
    where = f"upstream {upstream}: project list"
    if content_type == JSON_V1:
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise UpstreamError(f"{where} is malformed JSON: {exc}") from None
        projects = document.get("projects") if isinstance(document, dict) else None
        if not isinstance(projects, list):
            raise UpstreamError(f"{where}: projects is not a list")
        names = [p.get("name") for p in projects if isinstance(p, dict)]
        return sorted({normalize_name(n) for n in names if isinstance(n, str) and is_project_name(n)})
    parser = _Anchors()
    parser.feed(data.decode("utf-8", errors="replace"))
    texts = [unquote((a.get("href") or "").rstrip("/").rsplit("/", 1)[-1]) for a in parser.anchors]
    return sorted({normalize_name(t) for t in texts if is_project_name(t)})  # others are no projects


# -- one upstream ----------------------------------------------------------------------------------


def _freshness(cache_control: str | None, cap: float) -> float:
    """Seconds a shared cache may keep an answer: ``s-maxage``/``max-age``, at most ``cap``; 0 when forbidden."""
    if cap <= 0:
        return 0.0
    if not cache_control:
        return cap
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        key, _, value = part.strip().partition("=")
        directives[key.strip().lower()] = value.strip().strip('"')
    if {"no-store", "no-cache", "private"} & set(directives):
        return 0.0
    for key in ("s-maxage", "max-age"):
        if key in directives:
            try:
                return max(0.0, min(float(directives[key]), cap))
            except ValueError:
                return 0.0
    return cap


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verified TLS: the system's CAs, plus those in ``ca_file`` (a PEM bundle) when given.

    Added, not instead: one server often has a public upstream (pypi.org) and a private one
    behind the company's CA. UsageError when the file cannot be read as PEM certificates.
    """
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(
                f"cannot use {ca_file!r} as the upstream CA file: {reason}",
                hint="give a PEM file of CA certificates",
            ) from None
    return context


@dataclass
class Upstream:
    """One upstream index: its simple URL (credentials in it are sent only to its own host)."""

    url: str
    timeout: float = 30.0
    cache_seconds: float = 60.0
    ca_file: str | None = None
    _pool: urllib3.PoolManager = field(init=False, repr=False)
    _auth: dict[str, str] = field(init=False, repr=False)
    _host: str = field(init=False, repr=False)
    _cache: OrderedDict[str, _Entry] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)
    _stripes: tuple[threading.Lock, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.url)
            hostname = parts.hostname
        except ValueError:
            hostname = None
        if hostname is None or parts.scheme not in ("http", "https"):
            raise UsageError(
                f"upstream {self.display!r} is not an http(s) URL",
                hint="give the simple index URL, e.g. https://pypi.org/simple/",
            )
        self._auth = {}
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._auth = {"Authorization": f"Basic {token}"}
        self._host = parts.netloc.rpartition("@")[2]
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.url = urlunsplit((parts.scheme, self._host, path, "", ""))
        self._pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=32,
            block=False,
            cert_reqs="CERT_REQUIRED",
            ssl_context=tls_context(self.ca_file),
            retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
            headers={"User-Agent": "mloci-index"},
        )
        self._cache = OrderedDict()
        self._lock = threading.Lock()
        self._stripes = tuple(threading.Lock() for _ in range(_STRIPES))

    @property
    def display(self) -> str:
        """The URL without credentials, for messages and logs."""
        try:
            parts = urlsplit(self.url)
        except ValueError:
            return "(malformed URL)"
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))

    def _headers(self, url: str, accept: str | None = None) -> dict[str, str]:
        headers = dict(self._auth) if urlsplit(url).netloc == self._host else {}
        if accept:
            headers["Accept"] = accept
        return headers

    def _unreachable(self, exc: BaseException, what: str) -> UpstreamError:
        reason = getattr(exc, "reason", None) or exc
        text = str(reason)
        if "timed out" in text.lower() or isinstance(reason, TimeoutError):
            text = f"timed out after {self.timeout:g} s"
        elif isinstance(reason, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
            text = "its TLS certificate is not trusted (give its CA with --upstream-ca-file)"
        elif "refused" in text.lower():
            text = "connection refused"
        elif "resolve" in text.lower() or "name or service" in text.lower():
            text = "the host name does not resolve"
        return UpstreamError(f"upstream {self.display} is unreachable ({what}): {text}", temporary=True)

    def _get_page(self, url: str, what: str) -> tuple[urllib3.BaseHTTPResponse, bytes]:
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=self._headers(url, ACCEPT),
                timeout=urllib3.Timeout(total=self.timeout),
                preload_content=False,
            )
            # The timeout bounds each socket read; the deadline bounds the page (a slow drip too).
            deadline = time.monotonic() + self.timeout
            parts: list[bytes] = []
            size = 0
            try:
                while size <= MAX_PAGE and (part := response.read1(_CHUNK)):
                    parts.append(part)
                    size += len(part)
                    if time.monotonic() > deadline:
                        response.close()
                        raise UpstreamError(
                            f"upstream {self.display} is unreachable ({what}): timed out after {self.timeout:g} s",
                            temporary=True,
                        )
            finally:
                response.release_conn()
            data = b"".join(parts)
        except (HTTPError, OSError) as exc:
            raise self._unreachable(exc, what) from None
        if len(data) > MAX_PAGE:
            raise UpstreamError(f"upstream {self.display}: {what} is larger than {MAX_PAGE >> 20} MiB")
        return response, data

    def _cached(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None or entry.expires <= time.monotonic():
                return False, None
            self._cache.move_to_end(key)
            return True, entry.value

    def _remember(self, key: str, value: Any, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self._cache[key] = _Entry(time.monotonic() + seconds, value)
            self._cache.move_to_end(key)
            while len(self._cache) > _MAX_CACHED:
                self._cache.popitem(last=False)

    def project(self, name: str) -> UpstreamProject | None:
        """The project page of normalized ``name``, or None when this upstream has no such project.

        Concurrent requests for a page that is not cached wait for one fetch (many installers
        starting at once must not become as many upstream requests).
        """
        hit, value = self._cached(f"project:{name}")
        if hit:
            found: UpstreamProject | None = value
            return found
        if self.cache_seconds <= 0:
            return self._fetch_project(name)
        with self._stripes[hash(name) % len(self._stripes)]:
            hit, value = self._cached(f"project:{name}")
            if hit:
                again: UpstreamProject | None = value
                return again
            return self._fetch_project(name)

    def _fetch_project(self, name: str) -> UpstreamProject | None:
        url = urljoin(self.url, f"{name}/")
        response, data = self._get_page(url, f"project page of {name}")
        keep = _freshness(response.headers.get("Cache-Control"), self.cache_seconds)
        if response.status in (404, 410):
            self._remember(f"project:{name}", None, keep)
            return None
        if response.status != 200:
            raise UpstreamError(
                f"upstream {self.display} answered HTTP {response.status} for the project page of {name}"
            )
        page_url = urljoin(url, response.geturl() or url)  # after redirects; may be a bare path
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == JSON_V1:
            project = parse_json(name, page_url, data, self.display)
        elif content_type in ("text/html", "application/vnd.pypi.simple.v1+html", ""):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise UpstreamError(f"upstream {self.display}: project page of {name} is not UTF-8") from None
            project = parse_html(name, page_url, text, self.display)
        else:
            raise UpstreamError(
                f"upstream {self.display} answered {content_type!r} for the project page of {name}, "
                "not a simple API page"
            )
        self._remember(f"project:{name}", project, keep)
        return project

    def project_names(self) -> list[str]:
        hit, value = self._cached("projects")
        if hit:
            names: list[str] = value
            return names
        response, data = self._get_page(self.url, "project list")
        if response.status != 200:
            raise UpstreamError(
                f"upstream {self.display} answered HTTP {response.status} for the project list"
            )
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        names = parse_project_list(data, content_type, self.display)
        self._remember(
            "projects", names, _freshness(response.headers.get("Cache-Control"), self.cache_seconds)
        )
        return names

    def open(
        self, url: str, hashes: Mapping[str, str], what: str
    ) -> tuple[urllib3.BaseHTTPResponse, Iterator[bytes]]:
        """Start downloading ``url``; the iterator yields its bytes and raises UpstreamError at the end
        when they do not match the strongest of ``hashes`` (sha256 first)."""
        try:
            response = self._pool.request(
                "GET",
                url,
                headers=self._headers(url),
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                preload_content=False,
                decode_content=False,
            )
        except (HTTPError, OSError) as exc:
            raise self._unreachable(exc, what) from None
        if response.status != 200:
            response.drain_conn()
            response.release_conn()
            raise UpstreamError(f"upstream {self.display} answered HTTP {response.status} for {what}")
        chosen = next(((n, hashes[n]) for n in _PREFERRED if n in hashes), None)

        def chunks() -> Iterator[bytes]:
            hasher = hashlib.new(chosen[0]) if chosen else None
            complete = False
            try:
                for chunk in response.stream(_CHUNK, decode_content=False):
                    if hasher is not None:
                        hasher.update(chunk)
                    yield chunk
                complete = True
            except (HTTPError, OSError) as exc:
                raise self._unreachable(exc, what) from None
            finally:
                if not complete:
                    response.close()  # unread bytes would poison a pooled connection: drop it
                response.release_conn()
            if hasher is not None and chosen is not None and hasher.hexdigest() != chosen[1]:
                raise UpstreamError(
                    f"upstream {self.display}: {what} does not match its page's {chosen[0]} "
                    f"({hasher.hexdigest()} != {chosen[1]}); refused"
                )

        return response, chunks()

    def close(self) -> None:
        self._pool.clear()


def versions_of(project: UpstreamProject) -> tuple[str, ...]:
    """PEP 700 ``versions``: as the upstream said, else from the file names it lists."""
    if project.versions is not None:
        return project.versions
    found: set[Version] = set()
    for file in project.files:
        try:
            found.add(parse_filename(file.filename).version)
        except UsageError:
            continue
    return tuple(str(v) for v in sorted(found))
