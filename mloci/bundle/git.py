"""What git knows about a bundle: the commit it was built from, and whether the tree was dirty.

The detection lives in :mod:`mloci.buildenv` (one place for CI and git); this module keeps the
bundle-facing names.
"""

from __future__ import annotations

from mloci.buildenv import GitState, git_state

__all__ = ["GitState", "git_state"]
