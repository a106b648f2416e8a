"""Thumbnails decoded in a thread pool, kept in a byte-bounded LRU cache in memory.

The grid's delegate asks :meth:`ThumbnailLoader.get` for each *painted* cell; a miss queues
a request and returns None (a placeholder is painted). Worker threads take the *newest*
request first (what is on screen now), so a fast scroll does not leave the screen waiting
behind thousands of cells that scrolled past; the queue is bounded and old requests fall
off. Finished thumbnails arrive in batches on the GUI thread (:attr:`ready`), which only
inserts ready-made ``QImage`` objects: the GUI thread never decodes or converts pixels.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QImage

from casdesk.core.errors import CasdeskError
from casdesk.core.raster import thumbnails
from casdesk.gui.kit.gil import lower_thread_priority
from casdesk.gui.kit.pools import call_pool

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 160 * 1024 * 1024
"""Memory for decoded thumbnails (~2,500 thumbnails at 128 px, ~600 at 256 px)."""
MAX_QUEUED = 768
"""Requests waiting for a worker; older ones are dropped (they scrolled out of view)."""
BATCH_MAX = 16
BATCH_S = 0.025
"""A worker hands its thumbnails to the GUI thread in batches: at most this many, or after
this long, or when nothing more is queued."""


@dataclass(frozen=True)
class ThumbRequest:
    """What to decode: a tile at one cached size. ``modified`` keys the disk cache."""

    tile_id: int
    modified: str
    size: int
    image_path: Path
    mask_path: Path | None
    prefetch: bool = False
    """Only read the disk cache (nothing when it has no such thumbnail): warming the memory
    cache before the tile table arrives, where a request may be out of date."""

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.tile_id, self.size, self.modified)


@dataclass(frozen=True)
class ThumbImages:
    """A thumbnail ready to paint: the image, and the mask as transparent colour layers."""

    rgb: QImage | None  # None: the tile could not be read
    fill: QImage | None
    outline: QImage | None
    nbytes: int
    error: str = ""


def _rgba_layer(sel: np.ndarray, color: tuple[int, int, int]) -> QImage:
    rows, cols = sel.shape
    layer = np.zeros((rows, cols, 4), np.uint8)
    layer[sel] = (*color, 255)
    image = QImage(layer.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888)
    return image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)  # a copy, in the painter's format


def to_images(thumb: thumbnails.Thumbnail) -> ThumbImages:
    """Numpy thumbnail -> QImages (done in the worker; QImage is safe off the GUI thread),
    in the formats the grid's painter draws without converting."""
    rgb = np.ascontiguousarray(thumb.rgb)
    rows, cols = rgb.shape[:2]
    # in the painter's own formats (RGB32, premultiplied ARGB32): drawn as they are, ~4-8 us a
    # cell, where RGB888 and RGBA8888 were converted at every paint (~35 us each)
    image = QImage(rgb.data, cols, rows, 3 * cols, QImage.Format.Format_RGB888).convertToFormat(
        QImage.Format.Format_RGB32
    )
    fill = outline = None
    if thumb.mask is not None and thumb.mask.any():
        fill = _rgba_layer(thumb.mask > 0, thumbnails.OVERLAY_RGB)
        width = max(1, min(rows, cols) // 128)
        outline = _rgba_layer(thumbnails.mask_outline(thumb.mask, width), thumbnails.OVERLAY_RGB)
    nbytes = image.sizeInBytes() + sum(i.sizeInBytes() for i in (fill, outline) if i is not None)
    return ThumbImages(image, fill, outline, nbytes + 200)


def load_images(request: ThumbRequest, cache: thumbnails.ThumbnailCache | None) -> ThumbImages | None:
    """Decode (or read from the disk cache) one thumbnail. Runs in a worker thread only.
    None: a prefetch found nothing in the disk cache."""
    if request.prefetch:
        try:
            stamp = thumbnails.file_stamp(request.image_path, request.mask_path)
            cached = None if cache is None else cache.get(request.tile_id, request.modified, request.size, stamp)
            return None if cached is None else to_images(cached)
        except Exception:  # noqa: BLE001 - a hint only: the grid asks again if needed
            return None
    try:
        if cache is not None:
            thumb = cache.load(
                request.tile_id, request.modified, request.size, request.image_path, request.mask_path
            )
        else:
            thumb = thumbnails.decode_thumbnail(request.image_path, request.mask_path, request.size)
    except (CasdeskError, OSError, ValueError) as exc:
        return ThumbImages(None, None, None, 200, str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken tile must not kill the worker
        log.warning("thumbnail of tile %s failed: %s", request.tile_id, exc)
        return ThumbImages(None, None, None, 200, f"{type(exc).__name__}: {exc}")
    return to_images(thumb)


class _Bridge(QObject):
    """Lives in the GUI thread; workers emit on it, so delivery is a queued call."""

    done = Signal(object)  # [(generation, request, ThumbImages), ...]


class _Queue:
    """Requests shared by the workers: newest first, bounded, thread-safe. Also counts the
    draining workers, so a request starts a new pool task only when a thread is free."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: deque[ThumbRequest] = deque()
        self.keys: set[tuple[int, int, str]] = set()
        self.prefetches: set[tuple[int, int, str]] = set()  # keys queued by a prefetch only
        self.stopped = False
        self.workers = 0
        self.generation = 0  # results of an older generation are dropped on arrival
        self.cache: thumbnails.ThumbnailCache | None = None

    def push(self, request: ThumbRequest, max_workers: int) -> bool:
        """Queue a request; True when the caller should start one more worker."""
        with self.lock:
            if self.stopped:
                return False
            if request.key in self.keys:
                if not request.prefetch and request.key in self.prefetches:  # wanted now: decode if need be
                    self.prefetches.discard(request.key)
                    self.items = deque(request if i.key == request.key else i for i in self.items)
                return False
            self.items.append(request)
            self.keys.add(request.key)
            if request.prefetch:
                self.prefetches.add(request.key)
            while len(self.items) > MAX_QUEUED:
                old = self.items.popleft().key
                self.keys.discard(old)
                self.prefetches.discard(old)
            if self.workers < max_workers:
                self.workers += 1
                return True
            return False

    def pop(
        self, keep_worker: bool = False
    ) -> tuple[ThumbRequest | None, int, thumbnails.ThumbnailCache | None] | None:
        """(newest request, generation, disk cache), or None: then the calling worker is no
        longer counted and must end. ``keep_worker``: when nothing is queued, answer
        ``(None, ...)`` and keep counting the worker (it delivers what it holds first)."""
        with self.lock:
            if not self.items and keep_worker and not self.stopped:
                return None, self.generation, self.cache
            if not self.items or self.stopped:
                self.workers -= 1
                return None
            request = self.items.pop()
            self.keys.discard(request.key)
            self.prefetches.discard(request.key)
            return request, self.generation, self.cache

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.keys.clear()
            self.prefetches.clear()

    def pop_all_and_leave(self) -> None:
        with self.lock:
            self.items.clear()
            self.keys.clear()
            self.prefetches.clear()
            self.workers -= 1


class _Task(QRunnable):
    """Drains the queue, newest request first, until it is empty."""

    def __init__(self, queue: _Queue, bridge: _Bridge) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._queue = queue
        self._bridge = bridge

    def run(self) -> None:
        lower_thread_priority()  # the GUI thread first when both want a core
        batch: list[tuple[int, ThumbRequest, ThumbImages]] = []
        since = 0.0
        while (item := self._queue.pop(keep_worker=bool(batch))) is not None:
            request, generation, cache = item
            if request is None:  # nothing queued: deliver what is done, then look again
                if not self._deliver(batch):
                    return
                batch = []
                continue
            images = load_images(request, cache)
            if images is None:
                continue
            if not batch:
                since = time.perf_counter()
            batch.append((generation, request, images))
            if len(batch) >= BATCH_MAX or time.perf_counter() - since >= BATCH_S:
                if not self._deliver(batch):
                    return
                batch = []

    def _deliver(self, batch: list[tuple[int, ThumbRequest, ThumbImages]]) -> bool:
        """One queued call on the GUI thread for the batch (each call from a worker into the
        GUI thread's Python waits there for the GIL); False when the loader is gone."""
        if not batch:
            return True
        try:
            self._bridge.done.emit(batch)
        except RuntimeError:  # the loader was deleted during shutdown
            self._queue.pop_all_and_leave()
            return False
        return True


class ThumbnailLoader(QObject):
    """Asynchronous thumbnails with an in-memory LRU bounded by bytes.

    ``ready`` carries the tile ids whose thumbnails arrived since the last emission (at most
    one emission per ~30 ms, so a burst of decodes costs one repaint).
    """

    ready = Signal(object)  # list[int]

    def __init__(
        self,
        parent: QObject | None = None,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        threads: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.max_bytes = max_bytes
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads or max(2, min(4, (os.cpu_count() or 2) - 1)))
        self._pool.setExpiryTimeout(5_000)
        self._queue = _Queue()
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_done_batch)
        self._disk: thumbnails.ThumbnailCache | None = None
        self._lru: OrderedDict[tuple[int, int, str], ThumbImages] = OrderedDict()
        self._bytes = 0
        self._generation = 0
        self._batch: list[int] = []
        self._timer = QTimer(self, singleShot=True, interval=30)
        self._timer.timeout.connect(self._flush)
        self._to_start = 0  # workers counted by the queue, to start after this event
        self._start_timer = QTimer(self, singleShot=True, interval=0)
        self._start_timer.timeout.connect(self._start_pending)
        self.decoded = 0  # thumbnails delivered (for tests and the benchmark)

    # ---- configuration
    def set_disk_cache(self, cache: thumbnails.ThumbnailCache | None) -> None:
        """Use ``cache`` (None: decode every time); drops everything queued or in memory."""
        self.reset()
        self._disk = cache
        with self._queue.lock:
            self._queue.cache = cache

    def reset(self) -> None:
        self._generation += 1
        with self._queue.lock:
            self._queue.generation = self._generation
        self._queue.clear()
        self._lru.clear()
        self._bytes = 0
        self._batch.clear()

    # ---- requests
    def get(self, request: ThumbRequest) -> ThumbImages | None:
        """The thumbnail if in memory (marks it recently used), else queue it and return None."""
        images = self._lru.get(request.key)
        if images is not None:
            self._lru.move_to_end(request.key)
            return images
        if self._queue.push(request, self._pool.maxThreadCount()):
            self._start_worker()
        return None

    def prefetch(self, requests: list[ThumbRequest]) -> None:
        """Read these thumbnails from the disk cache into memory, the first first (the queue
        is newest first); what the disk cache lacks is skipped."""
        for request in reversed(requests):
            request = replace(request, prefetch=True)
            if request.key not in self._lru and self._queue.push(request, self._pool.maxThreadCount()):
                self._start_worker()

    def _start_worker(self) -> None:
        """Start a worker once the GUI thread is done with what it is doing: requests come
        from a paint, and a worker started at once decoded (holding the GIL a third of the
        time) while the rest of the window painted: the paint that asked for thumbnails took
        longer for it."""
        self._to_start += 1
        if not self._start_timer.isActive():
            self._start_timer.start()

    def _start_pending(self) -> None:
        n, self._to_start = self._to_start, 0
        for _ in range(n):
            self._pool.start(_Task(self._queue, self._bridge))

    @property
    def disk_cache(self) -> thumbnails.ThumbnailCache | None:
        return self._disk

    def cached(self, key: tuple[int, int, str]) -> ThumbImages | None:
        """The thumbnail for a key ``(tile_id, size, modified)`` if in memory (marks it used);
        never queues: lets the painter skip building a request on a hit."""
        images = self._lru.get(key)
        if images is not None:
            self._lru.move_to_end(key)
        return images

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def pending(self) -> int:
        """Requests queued or running."""
        return len(self._queue.items) + self._pool.activeThreadCount()

    def drop_tile(self, tile_id: int) -> None:
        """Forget a tile's thumbnails in memory (its files changed)."""
        for key in [k for k in self._lru if k[0] == tile_id]:
            self._bytes -= self._lru.pop(key).nbytes

    @Slot(object)
    def _on_done_batch(self, batch: list[tuple[int, ThumbRequest, ThumbImages]]) -> None:
        for generation, request, images in batch:
            self._on_done(generation, request, images)

    def _on_done(self, generation: int, request: ThumbRequest, images: ThumbImages) -> None:
        if generation != self._generation:
            return
        old = self._lru.pop(request.key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._lru[request.key] = images
        self._bytes += images.nbytes
        while self._bytes > self.max_bytes and len(self._lru) > 1:
            _, evicted = self._lru.popitem(last=False)
            self._bytes -= evicted.nbytes
        self.decoded += 1
        self._batch.append(request.tile_id)
        if not self._timer.isActive():
            self._timer.start()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self.ready.emit(batch)

    # ---- lifetime
    def shutdown(self, msecs: int = 10_000) -> bool:
        """Drop queued work and wait for running decodes: no thread outlives the panel."""
        self._generation += 1
        with self._queue.lock:
            self._queue.generation = self._generation
            self._queue.stopped = True
        self._queue.clear()
        self._start_timer.stop()
        with self._queue.lock:  # workers counted but never started
            self._queue.workers -= self._to_start
            self._to_start = 0
        self._pool.clear()
        done = self._pool.waitForDone(msecs)
        self._timer.stop()
        return done

    def restart(self) -> None:
        """Accept requests again after :meth:`shutdown` (a project re-opened)."""
        with self._queue.lock:
            self._queue.stopped = False


# --------------------------------------------------------------------------- first screen
FIRST_SCREEN_FILE = "first-screen.json"
"""In the thumbnail disk cache: the tiles of the last first screen (see :func:`save_first_screen`)."""


def save_first_screen(cache: thumbnails.ThumbnailCache, size: int, tiles: list[tuple[int, str, str, str | None]]) -> None:
    """Remember the tiles a project's first screen showed, ``(tile id, modified, image path,
    mask path)`` as stored in the catalog: the next open reads their thumbnails from the disk
    cache while the tile table loads (:func:`load_first_screen`). Worker thread; a project
    folder that cannot be written just has no such file."""
    path = cache.folder / FIRST_SCREEN_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"version": 1, "size": size, "tiles": tiles}))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def load_first_screen(cache: thumbnails.ThumbnailCache, root: Path) -> list[ThumbRequest]:
    """Prefetch requests for the tiles :func:`save_first_screen` remembered (stored paths
    resolved against the project folder ``root``); none when there is no usable file."""
    try:
        data = json.loads((cache.folder / FIRST_SCREEN_FILE).read_text())
        size = int(data["size"])
        out = []
        for tile_id, modified, image, mask in data["tiles"][:MAX_QUEUED]:
            out.append(ThumbRequest(
                int(tile_id), str(modified), size, _resolve(root, str(image)),
                None if mask is None else _resolve(root, str(mask)), prefetch=True,
            ))
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _resolve(root: Path, stored: str) -> Path:
    p = Path(stored)
    return p if p.is_absolute() else root / p


# --------------------------------------------------------------------------- one-off jobs
class _CallBridge(QObject):
    finished = Signal(int, object)
    failed = Signal(int, str)
    ended = Signal()  # after finished or failed, whatever the ticket


class _CallTask(QRunnable):
    def __init__(
        self, func: Callable[[], Any], ticket: int, bridge: _CallBridge, idle: threading.Event
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # its LatestCall holds it (to take it back while queued)
        self._func = func
        self._ticket = ticket
        self._bridge = bridge
        self._idle = idle

    def run(self) -> None:
        lower_thread_priority()  # the GUI thread first when both want a core
        try:
            result = self._func()
        except CasdeskError as exc:
            self._emit_failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user, logged in full
            log.exception("background call failed")
            self._emit_failed(f"{type(exc).__name__}: {exc}")
        else:
            try:
                self._bridge.finished.emit(self._ticket, result)
            except RuntimeError:
                pass
        finally:
            self._idle.set()
            try:
                self._bridge.ended.emit()
            except RuntimeError:
                pass

    def _emit_failed(self, message: str) -> None:
        try:
            self._bridge.failed.emit(self._ticket, message)
        except RuntimeError:
            pass


class LatestCall(QObject):
    """Runs a function in the background and reports only the *latest* call's result:
    loading the tile index or a detail view, where a newer request makes an older one moot.
    One call runs at a time; a call submitted meanwhile waits, and a newer one replaces it.

    The call starts once the GUI thread has finished the event that submitted it (a click
    is followed by the repaint it causes; a worker started at once competed with that
    repaint for the GIL and the cores), in the process's shared pool whose threads are
    made early and kept (:mod:`casdesk.gui.kit.pools`: a thread made while torch's
    libraries load stalled the window up to 110 ms)."""

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = call_pool()
        self._bridge = _CallBridge()
        self._bridge.finished.connect(self._on_finished)
        self._bridge.failed.connect(self._on_failed)
        self._bridge.ended.connect(self._on_ended)
        self._ticket = 0
        self._next: Callable[[], Any] | None = None  # submitted, not started yet
        self._task: _CallTask | None = None  # started (queued in the pool or running)
        self._idle = threading.Event()  # set while no task of this call is in the pool
        self._idle.set()
        self._start_timer = QTimer(self, singleShot=True, interval=0)
        self._start_timer.timeout.connect(self._start_next)

    def submit(self, func: Callable[[], Any]) -> None:
        self._ticket += 1
        self._next = func  # an older call not started yet will never be wanted
        self._start_timer.start()

    def _start_next(self) -> None:
        if self._task is not None:
            return  # started when the running call ends (_on_ended)
        func, self._next = self._next, None
        if func is not None:
            self._idle.clear()
            self._task = _CallTask(func, self._ticket, self._bridge, self._idle)
            self._pool.start(self._task)

    def _on_ended(self) -> None:
        self._task = None
        if self._next is not None:
            self._start_timer.start()

    def is_busy(self) -> bool:
        return self._next is not None or self._task is not None

    def cancel(self) -> None:
        """Ignore the result of every call made so far (one not started yet never runs)."""
        self._ticket += 1
        self._next = None

    def _on_finished(self, ticket: int, result: object) -> None:
        if ticket == self._ticket:
            self.finished.emit(result)

    def _on_failed(self, ticket: int, message: str) -> None:
        if ticket == self._ticket:
            self.failed.emit(message)

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Drop what has not started and wait up to ``msecs`` for the running call to end."""
        self._ticket += 1
        self._next = None
        self._start_timer.stop()
        task = self._task
        if task is not None and self._pool.tryTake(task):  # still queued: it never runs
            self._task = None
            self._idle.set()
        return self._idle.wait(msecs / 1000)
