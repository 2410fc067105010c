"""File names that are not UTF-8: stored as valid UTF-8 text and back, exactly."""

from __future__ import annotations

import os

import pytest

from lookalike.files.paths import ESCAPE, display_path, from_stored, to_stored

NAMES = [
    b"/photos/plain.jpg",
    "/photos/été/ça.png".encode(),  # UTF-8: stored as it is
    b"/photos/caf\xe9.jpg",  # Latin-1
    b"/photos/\xff\xfe\x80.jpg",
    b"/photos/" + ESCAPE.encode() + b"00.jpg",  # the escape character itself, then hex digits
    b"/photos/\xe9" + ESCAPE.encode() + b"\xe9/x.jpg",
]


@pytest.mark.parametrize("raw", NAMES)
def test_stored_form_is_utf8_and_turns_back_into_the_same_bytes(raw: bytes) -> None:
    path = os.fsdecode(raw)
    stored = to_stored(path)
    stored.encode("utf-8")  # SQLite TEXT: raises if a lone surrogate were left
    assert os.fsencode(from_stored(stored)) == raw


def test_utf8_names_keep_their_stored_form_and_folders_stay_prefixes() -> None:
    assert to_stored("/photos/été/ça.png") == "/photos/été/ça.png"
    folder = os.fsdecode(b"/photos/caf\xe9")
    inside = os.fsdecode(b"/photos/caf\xe9/\xff.jpg")
    assert to_stored(inside).startswith(to_stored(folder) + "/")
    assert to_stored(os.fsdecode(b"/a/\xe9")) != to_stored("/a/\\xe9")  # no look-alike clash


def test_display_shows_each_undecodable_byte_as_an_escape() -> None:
    assert display_path(os.fsdecode(b"/photos/caf\xe9.jpg")) == "/photos/caf\\xe9.jpg"
    assert display_path("/photos/ça.png") == "/photos/ça.png"
