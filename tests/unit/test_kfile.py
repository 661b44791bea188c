"""Bounded reads of kernel files: regular files only, never blocking, capped, confined to a copied tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from helpers.hang import no_hang
from memsched.errors import ConfigError, KernelError, KernelFileError, excerpt, printable
from memsched.kfile import MAX_KERNEL_FILE_BYTES, MAX_LISTING_BYTES, read_kernel_file, read_limit


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    """An ordinary file comes back byte for byte, in several chunks when it is larger than one."""
    data = bytes(range(256)) * 1000
    (tmp_path / "vmstat").write_bytes(data)
    assert read_kernel_file(tmp_path / "vmstat") == data


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO (no writer) is refused at once: opened O_NONBLOCK and checked with fstat, never read."""
    os.mkfifo(tmp_path / "vmstat")
    with no_hang(), pytest.raises(KernelFileError, match=r"vmstat: must be a regular file.*a FIFO"):
        read_kernel_file(tmp_path / "vmstat")


def test_a_device_is_refused(tmp_path: Path) -> None:
    """/dev/zero through a symlink (no tree given): a character device, refused before any read."""
    (tmp_path / "numa_maps").symlink_to("/dev/zero")
    with pytest.raises(KernelFileError, match="a character device"):
        read_kernel_file(tmp_path / "numa_maps")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory where a file belongs is refused naming the file, not an EISDIR from read."""
    (tmp_path / "stat").mkdir()
    with pytest.raises(KernelFileError, match=r"stat: must be a regular file.*a directory"):
        read_kernel_file(tmp_path / "stat")


def test_a_sparse_file_past_the_cap_is_refused(tmp_path: Path) -> None:
    """A 4 GiB sparse file is refused after reading one byte past the 1 MiB cap, not read whole."""
    path = tmp_path / "vmstat"
    with path.open("wb") as f:
        f.truncate(4 << 30)
    with pytest.raises(KernelFileError, match="vmstat: is larger than 1 MiB"):
        read_kernel_file(path)
    exact = tmp_path / "meminfo"
    exact.write_bytes(b"x" * MAX_KERNEL_FILE_BYTES)
    assert len(read_kernel_file(exact)) == MAX_KERNEL_FILE_BYTES


def test_listings_have_the_larger_cap() -> None:
    """numa_maps, maps, cgroup.procs and the interrupt tables may be tens of MiB; everything else 1 MiB."""
    assert read_limit(Path("/proc/1/numa_maps")) == read_limit(Path("/proc/interrupts")) == MAX_LISTING_BYTES
    assert read_limit(Path("/proc/vmstat")) == read_limit(Path("/sys/x/distance")) == MAX_KERNEL_FILE_BYTES


def test_a_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    """Inside a tree, a symlink leading out of it is refused, and the message shows none of the target's bytes."""
    secret = tmp_path / "secret"
    secret.write_text("root:TOPSECRET:0:0\n")
    tree = tmp_path / "proc"
    (tree / "900").mkdir(parents=True)
    (tree / "900" / "numa_maps").symlink_to(secret)
    (tree / "950").symlink_to(tmp_path)  # a directory link out of the tree
    for path in (tree / "900" / "numa_maps", tree / "950" / "secret"):
        with pytest.raises(KernelFileError, match="a symlink leads outside the tree") as e:
            read_kernel_file(path, root=tree)
        assert "TOPSECRET" not in str(e.value) and str(e.value).startswith(str(path))
    assert read_kernel_file(tree / "900" / "numa_maps") == secret.read_bytes()  # no tree: not confined


def test_a_symlink_inside_the_tree_is_followed(tmp_path: Path) -> None:
    """Links that stay inside the tree (sysfs's node -> cpu links, /proc/self) read normally."""
    tree = tmp_path / "sys"
    (tree / "cpu" / "cpu0").mkdir(parents=True)
    (tree / "cpu" / "cpu0" / "online").write_text("1\n")
    (tree / "node0").mkdir()
    (tree / "node0" / "cpu0").symlink_to("../cpu/cpu0")
    assert read_kernel_file(tree / "node0" / "cpu0" / "online", root=tree) == b"1\n"


def test_open_errors_are_left_to_the_caller(tmp_path: Path) -> None:
    """A missing file is the caller's plain FileNotFoundError (it knows whether that means 'process gone')."""
    with pytest.raises(FileNotFoundError):
        read_kernel_file(tmp_path / "nope")


def test_the_error_is_the_inputs_fault_and_a_kernel_error() -> None:
    """KernelFileError: a ConfigError (exit 2) and a KernelError with EINVAL, its message starting with the path."""
    e = KernelFileError("/p/vmstat", "is larger than 1 MiB")
    assert isinstance(e, ConfigError) and isinstance(e, KernelError) and e.errno == errno.EINVAL
    assert str(e) == "/p/vmstat: is larger than 1 MiB"


def test_an_excerpt_is_short_and_escaped() -> None:
    """A file's bytes in a message: repr-escaped, at most 60 characters."""
    shown = excerpt("\x00" * 20_000)
    assert len(shown) <= 60 and "\\x00" in shown and "\x00" not in shown
    assert excerpt("abc") == "'abc'" and len(excerpt("\x1b[2J" * 100)) <= 60


def test_printable_escapes_controls_lone_surrogates_and_bidi_controls() -> None:
    """Someone else's name on a terminal: C0/C1 controls and surrogateescape's bytes as \\xNN, other lone
    surrogates and the bidi embedding/override/isolate controls as \\uNNNN; other text is unchanged."""
    assert printable("db\udcff\udcfe") == "db\\xff\\xfe"
    assert printable("a\ud800b") == "a\\ud800b"
    assert printable("x\u202ey\u2066z") == "x\\u202ey\\u2066z"
    assert all(printable(chr(c)) == f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
    assert printable("\x1b[2J\x9b") == "\\x1b[2J\\x9b"
    shown = "café (v2) ü\u200d"
    assert printable(shown) == shown
    printable("db\udcff\u202e").encode("utf-8")  # strict UTF-8: nothing unencodable is left
