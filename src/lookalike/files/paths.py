"""File names that are not UTF-8: kept losslessly in the catalogue, shown readably.

On POSIX a file name is bytes. Python hands a name that is not valid UTF-8 (``café`` written
in Latin-1 by another system: ``caf\\xe9``) to us as a ``str`` with each undecodable byte as a
lone surrogate U+DC80..U+DCFF (``os.fsdecode``); ``open`` and ``os.stat`` turn it back into
the same bytes. SQLite TEXT must be valid UTF-8, which a lone surrogate is not, so paths cross
the catalogue boundary through :func:`to_stored` and :func:`from_stored`:

* a UTF-8 name is stored as it is (every path that ever worked keeps its stored form);
* an undecodable byte ``b`` is stored as ``ESCAPE`` followed by two lower-case hex digits;
* ``ESCAPE`` itself (U+FDD0, a Unicode noncharacter: reserved for internal use, never meant
  to appear in text) in a name is stored as its three UTF-8 bytes, each escaped the same way,
  so that decoding is unambiguous.

The mapping works character by character, so ``to_stored(folder + "/")`` is a prefix of the
stored form of every path under ``folder`` (the catalogue's folder filter relies on it).
"""

from __future__ import annotations

import os
import re

ESCAPE = "\ufdd0"
_ESCAPED_BYTE = re.compile(ESCAPE + "([0-9a-f]{2})")
_SURROGATES = range(0xDC80, 0xDD00)  # where os.fsdecode puts the bytes it cannot decode


def to_stored(path: str) -> str:
    """``path`` (as ``os.fsdecode`` gives it) as valid UTF-8 text; :func:`from_stored`
    reverses it exactly."""
    if ESCAPE not in path and _is_utf8(path):
        return path
    return "".join(_stored_char(c) for c in path)


def from_stored(text: str) -> str:
    """The path a :func:`to_stored` text came from (``open`` and ``os.stat`` accept it)."""
    if ESCAPE not in text:
        return text
    raw = bytearray()
    for i, part in enumerate(_ESCAPED_BYTE.split(text)):  # text, hex, text, hex, ..., text
        raw += bytes([int(part, 16)]) if i % 2 else part.encode("utf-8")
    return os.fsdecode(bytes(raw))


def display_path(path: str) -> str:
    """``path`` for people: each undecodable byte as a ``\\xNN`` escape (as ``ls -b`` does),
    so that it can be printed to any UTF-8 terminal or log."""
    if _is_utf8(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stored_char(char: str) -> str:
    if ord(char) in _SURROGATES:
        return f"{ESCAPE}{ord(char) - 0xDC00:02x}"
    if char == ESCAPE:
        return "".join(f"{ESCAPE}{b:02x}" for b in ESCAPE.encode("utf-8"))
    return char
