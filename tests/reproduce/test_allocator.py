"""The allocator setting of the reproduce processes."""

import platform
import sys

import pytest

from sktopk.reproduce import allocator


def test_does_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_heap_memory() is False


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_applies_with_glibc_and_can_be_repeated():
    # glibc accepts both values (the mmap threshold is its largest allowed);
    # workers and the command both call it.
    assert allocator.keep_heap_memory() is True
    assert allocator.keep_heap_memory() is True


def test_refuses_quietly_without_a_c_library(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: None)
    assert allocator.keep_heap_memory() is False
