"""inpaintlib.device: the process-wide speed switches are set only inside ``fast_global_flags`` and put back."""

from __future__ import annotations

import pytest
import torch

from inpaintlib import device


def _cuda_switches() -> tuple[bool, bool, bool]:
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)


def test_switches_are_on_inside_and_restored_after(monkeypatch):
    calls = []
    monkeypatch.setattr(device, "_mallopt", lambda settings: calls.append(dict(settings)) or True)
    torch.backends.cudnn.benchmark = False
    before = _cuda_switches()
    with device.fast_global_flags():
        assert _cuda_switches() == (True, True, True)
        assert calls == [{device._M_MMAP_MAX: 0, device._M_TRIM_THRESHOLD: 2**31 - 1}]
    assert _cuda_switches() == before
    assert calls[-1] == device._MALLOC_DEFAULTS  # glibc's defaults back


def test_restored_after_an_exception_and_nothing_set_when_disabled(monkeypatch):
    calls = []
    monkeypatch.setattr(device, "_mallopt", lambda settings: calls.append(settings) or True)
    before = _cuda_switches()
    with pytest.raises(RuntimeError), device.fast_global_flags():
        raise RuntimeError("boom")
    assert _cuda_switches() == before and len(calls) == 2
    with device.fast_global_flags(False):
        assert _cuda_switches() == before
    assert len(calls) == 2


def test_mallopt_reaches_the_c_library_here():
    """On glibc (this project's Linux machines) the allocator settings take; elsewhere the call says False."""
    ok = device._mallopt(device._MALLOC_DEFAULTS)
    assert ok in (True, False)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    assert ok is True
