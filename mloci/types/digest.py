"""Content digests (``algorithm:encoded``) as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from mloci.errors import UsageError

# Only registered algorithms are accepted; both are what registries verify.
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, encoded = text.partition(":")
        pattern = _ENCODED.get(algorithm)
        if not sep or pattern is None or not pattern.fullmatch(encoded):
            raise UsageError(
                f"invalid digest {text!r}", hint="expected sha256: followed by 64 lowercase hex digits"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        return self.encoded[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Digest:
            if isinstance(value, Digest):
                return value
            if not isinstance(value, str):
                raise ValueError("digest must be a string")
            try:
                return cls.parse(value)
            except UsageError as exc:
                raise ValueError(str(exc)) from None

        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=core_schema.str_schema(
                pattern=r"^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$"
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def hash_file(path: Path, check: Callable[[], None] | None = None) -> tuple[Digest, int]:
    """sha256 and size of a file, read once in 1 MiB blocks (OpenSSL's SHA-NI path runs at GB/s).

    ``check`` is called between blocks; it raises to abandon a long hash (Ctrl-C, a failed sibling).
    """
    hasher = hashlib.sha256()
    size = 0
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            if check is not None:
                check()
            hasher.update(view[:n])
            size += n
    return Digest("sha256", hasher.hexdigest()), size
