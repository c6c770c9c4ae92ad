"""``runtime.files.atomic_path`` and ``atomic_lines``: files streamed to a temporary sibling appear
whole or not at all, and a full disk is a one-line error naming the file."""

from __future__ import annotations

import errno
import stat

import pytest

from warnframe.runtime import files
from warnframe.runtime.errors import UserError


def test_lines_appear_whole_when_the_block_completes(tmp_path):
    p = tmp_path / "sub" / "out.jsonl"
    with files.atomic_lines(p) as write:
        write('{"a": 1}')
        write('{"b": "é"}')
        assert not p.exists() and len(list(p.parent.iterdir())) == 1  # only the temporary file
    assert p.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "é"}\n'
    assert stat.S_IMODE(p.stat().st_mode) == 0o644 and list(p.parent.iterdir()) == [p]


def test_a_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), files.atomic_lines(p) as write:
        write("new")
        raise KeyboardInterrupt
    assert p.read_text() == "old\n" and list(tmp_path.iterdir()) == [p]


def test_a_library_writes_the_temporary_path(tmp_path):
    p = tmp_path / "blob.bin"
    with files.atomic_path(p) as tmp:
        assert tmp.parent == p.parent and tmp.name.startswith(".blob.bin.")
        tmp.write_bytes(b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01" and list(tmp_path.iterdir()) == [p]


def test_the_blocks_own_errors_pass_and_a_full_disk_is_a_write_error(tmp_path):
    p = tmp_path / "out.txt"
    with pytest.raises(FileNotFoundError), files.atomic_path(p):
        (tmp_path / "missing").read_text()  # reading an input: not the output's error
    with pytest.raises(UserError, match="out.txt: no space left"), files.atomic_path(p):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_place_is_a_write_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="a part of the path is a file"), files.atomic_path(tmp_path / "file" / "x"):
        pass
