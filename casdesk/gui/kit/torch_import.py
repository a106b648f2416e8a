"""Importing torch in a worker thread without freezing the window.

``import torch`` takes 1-4 s, and the import runs with Python's GIL held for long stretches:
the GUI thread, which needs the GIL for every Python slot, paint and timer, froze 0.4-0.7 s
in one piece while a worker imported it (measured on a 2-core machine). Most of that piece
is the dynamic loader mapping and relocating torch's shared libraries (``libtorch_cpu.so``
alone is ~400 MB): CPython calls ``dlopen`` for an extension module, and ctypes calls it
for ``CDLL``, with the GIL held.

:func:`import_torch_quietly` imports torch with every such ``dlopen`` done first through a
ctypes *function call* (which releases the GIL), with the same file and flags; the
interpreter's own ``dlopen`` then finds the library loaded and returns at once. What is left
holding the GIL is the modules' own initialisation (``torch._C``'s bindings, ~0.1 s).
Elsewhere than Linux, or if anything here fails, torch is imported as usual.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()


def torch_imported() -> bool:
    return "torch" in sys.modules


def import_torch_quietly() -> ModuleType:
    """Import torch (once) with its shared libraries loaded outside the GIL. Call it from a
    worker thread; returns the module."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    with _lock:
        if "torch" not in sys.modules:
            with _dlopen_outside_the_gil():
                import torch  # noqa: F401
    return sys.modules["torch"]


MODEL_PACKAGES = ("segmentation_models_pytorch",)
"""What building a model imports beyond torch (~2 s: timm, torchvision, triton's library)."""


def import_ml_quietly() -> ModuleType:
    """torch, then the model packages (:data:`MODEL_PACKAGES`), their libraries loaded outside
    the GIL: what a training or prediction job calls first, in its worker thread."""
    torch = import_torch_quietly()
    missing = [name for name in MODEL_PACKAGES if name not in sys.modules]
    if missing:
        with _lock, _dlopen_outside_the_gil():
            for name in missing:
                try:
                    importlib.import_module(name)
                except ImportError as exc:  # the job itself reports what is missing
                    log.debug("%s not imported ahead: %s", name, exc)
    return torch


def _libc_dlopen() -> Callable[[bytes | None, int], int | None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return dlopen


class _PreloadExtensions(importlib.abc.MetaPathFinder):
    """Before an extension module is imported by the thread that installed this finder,
    ``dlopen`` its file (and with it the libraries it needs) through ``dlopen_`` with the
    interpreter's flags."""

    def __init__(self, dlopen_: Callable[[bytes | None, int], int | None]) -> None:
        self._dlopen = dlopen_
        self._thread = threading.get_ident()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if threading.get_ident() != self._thread:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        origin = spec.origin if spec is not None else None
        if origin and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            self._dlopen(origin.encode(), sys.getdlopenflags())
        return None  # the usual finders import it (the library is loaded by now)


@contextmanager
def _dlopen_outside_the_gil() -> Iterator[None]:
    dlopen = _libc_dlopen()
    if dlopen is None:
        yield
        return
    finder = _PreloadExtensions(dlopen)
    real = ctypes._dlopen  # type: ignore[attr-defined]  # what ctypes.CDLL calls

    def quiet(name: Any, mode: int = ctypes.DEFAULT_MODE) -> Any:
        if isinstance(name, str):
            dlopen(name.encode(), mode | 0x2)  # RTLD_NOW, as CDLL's own (the GIL released)
        return real(name, mode)

    sys.meta_path.insert(0, finder)
    ctypes._dlopen = quiet  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ctypes._dlopen = real  # type: ignore[attr-defined]
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass
