"""Python distributions (wheels and sdists) as OCI artifacts: one artifact per project version.

``filenames`` parses and normalizes distribution file names, ``metadata`` reads the core metadata
inside them, ``distribution`` checks a file is what its name says, and ``artifact`` maps a release
(one version's files) to and from an OCI manifest. The format is described in ``docs/wheels.md``.
"""
