"""The file index of tar-packed artifacts, read side: which files each tar layer holds.

Kept apart from :mod:`mloci.bundle.tarpack` (which writes it) so ``pull`` and ``inspect`` do not
import the bundle machinery. ``docs/format.md`` (The file index layer) documents the format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mloci.errors import IntegrityError, MlociError
from mloci.types import annotations as ann
from mloci.types.digest import Digest
from mloci.types.manifest import Descriptor, Manifest

FILE_INDEX_PATH = ".mloci-files.json"
ROLE_FILE_INDEX = "file-index"
INDEX_VERSION = 1
# About 110 bytes a file: room for a couple of million files; larger indexes are refused unread.
MAX_INDEX_SIZE = 256 << 20


@dataclass(frozen=True, slots=True)  # slots: an index can list 100,000 files
class IndexedFile:
    path: str
    size: int
    digest: str


FileIndex = dict[Digest, tuple[IndexedFile, ...]]  # tar layer digest -> its files


def index_layer(manifest: Manifest) -> Descriptor | None:
    for layer in manifest.layers:
        if layer.annotation(ann.ROLE) == ROLE_FILE_INDEX:
            return layer
    return None


def _file_or_dict(value: dict[str, Any]) -> IndexedFile | dict[str, Any]:
    """A JSON object of the index: a file entry (path, size, digest) as an IndexedFile, others as they are."""
    if "path" in value and "size" in value and "digest" in value and "files" not in value:
        return IndexedFile(str(value["path"]), int(value["size"]), str(value["digest"]))
    return value


def parse_index(data: bytes) -> FileIndex:
    """The file index; IntegrityError when it is not the documented shape."""
    try:
        # Each file's object becomes an IndexedFile as soon as it is parsed, so 100,000 dicts are
        # never held at once (about 40 MB for an index of 100,000 files).
        document = json.loads(data, object_hook=_file_or_dict)
        if not isinstance(document, dict):
            raise TypeError("not an object")
        if document.get("version") != INDEX_VERSION:
            raise IntegrityError(f"file index version {document.get('version')!r} is not supported")
        index: FileIndex = {}
        for layer in document["layers"]:
            files = tuple(layer["files"])
            if not all(isinstance(f, IndexedFile) for f in files):
                raise TypeError("files")
            index[Digest.parse(layer["digest"])] = files
        return index
    except IntegrityError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, MlociError):
        raise IntegrityError("the artifact's file index is malformed") from None
