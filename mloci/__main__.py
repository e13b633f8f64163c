"""``python -m mloci``: the same as the ``mloci`` command."""

from mloci.cli import entry

entry()
