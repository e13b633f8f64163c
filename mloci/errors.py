"""Every error mloci raises on purpose.

The tree, with the process exit code the CLI maps each branch to::

    MlociError                      1  anything not classified below
    ├── UsageError                  2  bad arguments, bad references, bad config
    ├── BundleInvalidError          3  a bundle fails validation (carries every problem)
    ├── NotFoundError               4  repository, tag, manifest or blob is missing
    ├── AuthError                   5  credentials missing, wrong or lacking scope
    ├── IntegrityError              6  digest or size mismatch, unsafe content
    ├── ConflictError               7  immutability: the tag already names other content
    ├── UnavailableError            8  registry unreachable, DNS, refused, timed out
    │   └── TimedOutError           8  connected, but no answer in time (HTTP servers: 504)
    ├── RegistryError               9  the registry answered, but not as the spec says
    ├── UnsupportedError           10  the registry cannot do this (deletes disabled, …)
    ├── PolicyError                11  a policy gate refused (promotion, pull with verification)
    └── ContractError              12  the bundle's contract is not met (a test failed, the
                                       environment is incompatible)

Only the CLI entry point turns these into a message and an exit code; library
callers catch :class:`MlociError` (or a branch of it). Foreign exceptions are
wrapped with ``raise ... from exc`` so they never leak as tracebacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class MlociError(Exception):
    """Root of every mloci error. ``str(err)`` is one line a user can act on.

    ``temporary`` says whether the same request may succeed if sent again (a dropped
    connection, a 503); transports retry only those.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, temporary: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.temporary = temporary

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MlociError):
    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One validation problem: a dotted field path (or file path) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class BundleInvalidError(MlociError):
    exit_code = 3

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message, hint="run 'mloci validate' for details" if problems else None)
        self.problems = tuple(problems)


class NotFoundError(MlociError):
    exit_code = 4


class AuthError(MlociError):
    exit_code = 5


class IntegrityError(MlociError):
    exit_code = 6


class NotAManifestError(IntegrityError):
    """A reference resolved to a blob (a layer, a config), not a manifest; a tag naming one may be replaced."""


class ConflictError(MlociError):
    exit_code = 7


class UnavailableError(MlociError):
    exit_code = 8


class TimedOutError(UnavailableError):
    """The registry did not answer within the timeout (a gateway reports 504, not 503)."""


class RegistryError(MlociError):
    """The registry answered in a way the distribution spec does not allow (or refused the request).

    Carries what is needed to debug without leaking secrets: method, redacted URL,
    HTTP status and the OCI error codes from the response body.
    """

    exit_code = 9

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        codes: Sequence[str] = (),
        hint: str | None = None,
        temporary: bool = False,
    ) -> None:
        super().__init__(message, hint=hint, temporary=temporary)
        self.method = method
        self.url = url
        self.status = status
        self.codes = tuple(codes)


class UnsupportedError(MlociError):
    exit_code = 10


class PolicyError(MlociError):
    exit_code = 11


class ContractError(MlociError):
    exit_code = 12


EXIT_CODES: dict[str, int] = {
    cls.__name__: cls.exit_code
    for cls in (
        MlociError,
        UsageError,
        BundleInvalidError,
        NotFoundError,
        AuthError,
        IntegrityError,
        ConflictError,
        UnavailableError,
        RegistryError,
        UnsupportedError,
        PolicyError,
        ContractError,
    )
}
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM (Kubernetes, CI cancel): 128 + 15
