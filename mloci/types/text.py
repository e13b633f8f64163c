"""Text that is unsafe in file names or on a terminal: control characters and their escapes."""

from __future__ import annotations

import re

# C0 controls (newline, ESC…), DEL and the C1 controls (CSI U+009B is ESC [ on many terminals).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Also invisible when printed, and able to reorder or hide what a terminal shows: bidirectional
# overrides and isolates ("Trojan Source"), and the Unicode line and paragraph separators.
# Lone surrogates (undecodable bytes in a file name, kept by surrogateescape) cannot be encoded.
_UNSAFE_ON_TERMINAL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def is_utf8(text: str) -> bool:
    """Whether ``text`` (e.g. a file name decoded with surrogateescape) is valid Unicode, encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (newline and tab included)."""
    return CONTROL.search(text) is not None


def escape_controls(text: str) -> str:
    """``text`` with every control character, bidi override and line separator escaped as ``\\xNN``/``\\uNNNN``."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape kept it
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE_ON_TERMINAL.sub(escape, text)
