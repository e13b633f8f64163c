"""A Python package index over a registry: the simple repository API (PEP 503 HTML, PEP 691 JSON,
PEP 658/714 core metadata, PEP 592 yanks, PEP 700 sizes) and the legacy upload API twine uses.

Projects are the repositories under one namespace, versions their release manifests
(``docs/wheels.md``). The server keeps no state of its own: every page is read from the registry,
and every file is streamed from it, verified, as it is sent.
"""
