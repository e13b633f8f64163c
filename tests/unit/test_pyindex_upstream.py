"""Parsing upstream simple pages and their cache headers (no servers)."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloci.pyindex.pages import FileLink, project_html, project_json
from mloci.pyindex.upstream import (
    UpstreamError,
    UpstreamProject,
    _freshness,
    parse_html,
    parse_json,
    parse_project_list,
    versions_of,
)

SHA = "a" * 64
PAGE = "https://files.example/simple/featurekit/"


def test_html_pages_keep_hashes_attributes_and_resolve_urls() -> None:
    html = f"""<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.1"></head><body>
    <a href="../../packages/featurekit-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.9"
       data-core-metadata="sha256={"b" * 64}" data-yanked="">featurekit-1.0-py3-none-any.whl</a>
    <a href="https://cdn.example/f/featurekit-1.1.tar.gz#md5={"c" * 32}" data-yanked="bad &lt;x&gt;">x</a>
    <a href="/p/featurekit-1.2.tar.gz" data-dist-info-metadata="true">featurekit-1.2.tar.gz</a>
    </body></html>"""
    project = parse_html("featurekit", PAGE, html, "https://files.example/simple/")
    first, second, third = project.files
    assert first.url == "https://files.example/packages/featurekit-1.0-py3-none-any.whl"
    assert first.hashes == {"sha256": SHA} and first.requires_python == ">=3.9"
    assert first.core_metadata == {"sha256": "b" * 64} and first.yanked == ""
    assert second.filename == "featurekit-1.1.tar.gz" and second.hashes == {"md5": "c" * 32}
    assert second.yanked == "bad <x>" and second.best_hash == ("md5", "c" * 32)
    assert third.core_metadata == {} and third.yanked is None and third.hashes == {}
    assert versions_of(project) == ("1.0", "1.1", "1.2")


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ('<meta name="pypi:repository-version" content="2.0"><a href="x-1.tar.gz">x</a>', "version 2.0"),
        ('<a href="x-1.tar.gz#sha256=zz">x</a>', "malformed sha256 hash"),
        ('<a href="x-1.tar.gz#sha256=abcd">x</a>', "wrong length"),
        ('<a href="x-1.tar.gz#nohash">x</a>', "malformed hash fragment"),
        ('<a href="file:///etc/passwd">x</a>', "is not http(s)"),
        ('<a href="../">x</a>', "does not end in a file name"),
        ('<a href="http://[::1/x.whl">x</a>', "malformed URL"),
        ('<a href="x-1.whl" data-core-metadata="nonsense">x</a>', "malformed data-core-metadata"),
        ("just text", "is not an HTML page"),
    ],
)
def test_malformed_html_pages_are_refused(html: str, message: str) -> None:
    with pytest.raises(UpstreamError, match=re.escape(message)):
        parse_html("x", PAGE, html, "up")


def test_json_pages_keep_pep_691_and_700_fields() -> None:
    document = {
        "meta": {"api-version": "1.1"},
        "name": "featurekit",
        "versions": ["1.0", "2.0"],
        "files": [
            {
                "filename": "featurekit-1.0-py3-none-any.whl",
                "url": "../../f/featurekit-1.0-py3-none-any.whl",
                "hashes": {"sha256": SHA, "blake2b_256": "d" * 64},
                "requires-python": ">=3.9",
                "core-metadata": {"sha256": "b" * 64},
                "yanked": "broken",
                "size": 123,
                "upload-time": "2024-01-01T00:00:00.000000Z",
                "provenance": "../../integrity/featurekit/1.0/featurekit-1.0-py3-none-any.whl/provenance",
            }
        ],
    }
    project = parse_json("featurekit", PAGE, json.dumps(document).encode(), "up")
    (file,) = project.files
    assert file.url == "https://files.example/f/featurekit-1.0-py3-none-any.whl"
    assert file.hashes == {"sha256": SHA, "blake2b_256": "d" * 64}
    assert (file.size, file.upload_time, file.yanked) == (123, "2024-01-01T00:00:00.000000Z", "broken")
    assert versions_of(project) == ("1.0", "2.0")
    assert file.provenance == (
        "https://files.example/integrity/featurekit/1.0/featurekit-1.0-py3-none-any.whl/provenance"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"meta": {"api-version": "1.0"}, "files": "x"}, "files is not a list"),
        ({"meta": {"api-version": "1.0"}, "files": [{"filename": "a.whl"}]}, "url is not a string"),
        (
            {"meta": {"api-version": "1.0"}, "files": [{"filename": "a.whl", "url": "a.whl", "size": -1}]},
            "size is not a non-negative integer",
        ),
        (
            {"meta": {"api-version": "1.0"}, "files": [{"filename": "a.whl", "url": "a.whl", "yanked": 3}]},
            "yanked is neither",
        ),
        ({"meta": {"api-version": "1.0"}, "files": [], "versions": [1]}, "versions is not a list of strings"),
        ([], "not a JSON object"),
    ],
)
def test_malformed_json_pages_are_refused(document: object, message: str) -> None:
    with pytest.raises(UpstreamError, match=re.escape(message)):
        parse_json("x", PAGE, json.dumps(document).encode(), "up")


def test_deeply_nested_json_is_refused_not_a_crash() -> None:
    with pytest.raises(UpstreamError, match="malformed JSON"):
        parse_json("x", PAGE, b"[" * 100_000, "up")


def test_project_lists_are_normalized() -> None:
    html = b'<a href="/simple/Feature_Kit/">Feature_Kit</a><a href="pandas/">pandas</a>'
    assert parse_project_list(html, "text/html", "up") == ["feature-kit", "pandas"]
    data = json.dumps(
        {"meta": {"api-version": "1.0"}, "projects": [{"name": "A.B"}, {"name": "-bad"}]}
    ).encode()
    assert parse_project_list(data, "application/vnd.pypi.simple.v1+json", "up") == ["a-b"]
    assert parse_project_list(b'<a href="-bad/">-bad</a>', "text/html", "up") == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 60.0),
        ("max-age=10", 10.0),
        ("public, max-age=600", 60.0),
        ("s-maxage=5, max-age=50", 5.0),
        ("no-cache", 0.0),
        ("private, max-age=30", 0.0),
        ("no-store", 0.0),
        ("max-age=nonsense", 0.0),
    ],
)
def test_freshness_honours_cache_control_up_to_the_cap(header: str | None, seconds: float) -> None:
    assert _freshness(header, 60.0) == seconds


def test_no_file_on_an_empty_project() -> None:
    assert UpstreamProject("x", "up", ()).file("x-1.tar.gz") is None


def test_pages_pass_on_upstream_fields_escaped() -> None:
    link = FileLink(
        filename="x-1.0.tar.gz",
        version="",
        url="../../upstream/x/x-1.0.tar.gz",
        sha256=None,
        size=None,
        requires_python=None,
        metadata_sha256=None,
        yanked='bad "x"',
        other_hashes=(("md5", "c" * 32),),
        upload_time="2024-01-01T00:00:00Z",
        provenance='https://up.example/p?a=1&b="2"',
    )
    document = json.loads(project_json("x", [], [link], versions=["1.0"]))
    assert document["meta"]["api-version"] == "1.0"  # no size known: not 1.1
    (entry,) = document["files"]
    assert entry["hashes"] == {"md5": "c" * 32} and "size" not in entry
    assert entry["upload-time"] == "2024-01-01T00:00:00Z" and entry["provenance"].startswith("https://up")
    html = project_html("x", [link])
    assert 'href="../../upstream/x/x-1.0.tar.gz#md5=' in html
    assert 'data-provenance="https://up.example/p?a=1&amp;b=&quot;2&quot;"' in html
    assert 'data-yanked="bad &quot;x&quot;"' in html


# -- fuzzing: whatever an upstream sends is a page or one UpstreamError, never another exception -----

_FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_HTML_BITS = st.sampled_from(
    [
        "<a ",
        'href="',
        "x-1.0.tar.gz",
        "#sha256=",
        "a" * 64,
        '" ',
        "data-yanked",
        '="',
        "data-core-metadata",
        "data-requires-python",
        "data-provenance",
        "sha256=",
        "true",
        ">",
        "</a>",
        '<meta name="pypi:repository-version" content="',
        "1.1",
        "2.0",
        "&lt;",
        "&#x0;",
        "../",
        "file:",
        "\x00",
        "é",
        "http://[::1",
        "//",
        ":99999",
    ]
)


@_FUZZ
@given(st.lists(_HTML_BITS | st.text(max_size=20), max_size=40).map("".join))
def test_fuzz_html_pages(text: str) -> None:
    with contextlib.suppress(UpstreamError):
        parse_html("x", PAGE, text, "up")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
_FILE = st.fixed_dictionaries(
    {},
    optional={
        "filename": _JSON | st.just("x-1.0.tar.gz"),
        "url": _JSON | st.just("x-1.0.tar.gz"),
        "hashes": _JSON | st.just({"sha256": "a" * 64}),
        "core-metadata": _JSON,
        "yanked": _JSON,
        "size": _JSON,
        "upload-time": _JSON,
        "provenance": _JSON,
        "requires-python": _JSON,
    },
)


@_FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "meta": _JSON | st.just({"api-version": "1.1"}),
            "files": _JSON | st.lists(_FILE, max_size=3),
            "versions": _JSON,
        },
    )
    | _JSON
)
def test_fuzz_json_pages(document: object) -> None:
    with contextlib.suppress(UpstreamError):
        parse_json("x", PAGE, json.dumps(document).encode(), "up")


@_FUZZ
@given(st.binary(max_size=200))
def test_fuzz_raw_bytes_and_project_lists(data: bytes) -> None:
    for call in (
        lambda: parse_json("x", PAGE, data, "up"),
        lambda: parse_project_list(data, "application/vnd.pypi.simple.v1+json", "up"),
        lambda: parse_project_list(data, "text/html", "up"),
    ):
        with contextlib.suppress(UpstreamError):
            call()


@_FUZZ
@given(
    st.fixed_dictionaries({}, optional={"projects": _JSON | st.lists(st.fixed_dictionaries({"name": _JSON}))})
    | _JSON,
    st.lists(_HTML_BITS | st.text(max_size=20), max_size=40).map("".join),
)
def test_fuzz_project_lists(document: object, html: str) -> None:
    with contextlib.suppress(UpstreamError):
        parse_project_list(json.dumps(document).encode(), "application/vnd.pypi.simple.v1+json", "up")
    with contextlib.suppress(UpstreamError):
        parse_project_list(html.encode(), "text/html", "up")
