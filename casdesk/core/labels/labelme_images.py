"""The image of a LabelMe file: the embedded ``imageData`` or the file ``imagePath`` points
to (found where LabelMe looks for it), decoded to RGB, and an RGB image encoded back as
LabelMe embeds it."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import numpy as np

from casdesk.core.labels.labelme_model import LabelMeDocument, LabelMeError


def load_labelme_image(doc: LabelMeDocument, json_path: str | Path) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB image: the embedded ``imageData``, else ``imagePath``
    resolved relative to the JSON file's folder (Windows backslashes accepted)."""
    import cv2

    jp = Path(json_path)
    embedded = embedded_image_bytes(doc, jp)
    if embedded is not None:
        raw = embedded
        source: Path = jp
    else:
        if not doc.imagePath:
            raise LabelMeError("the file has neither imageData nor imagePath", jp)
        source = _find_image(doc.imagePath, jp)
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise LabelMeError(f"image cannot be read ({exc.strerror or exc})", source) from exc
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
    if img is None:
        img = _read_with_rasterio(raw, source)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = np.repeat(img[:, :, :1], 3, axis=2)
    if img.dtype != np.uint8:
        img = _stretch_to_uint8(img)
    return np.ascontiguousarray(img)


def image_candidates(image_path: str, json_path: Path) -> list[Path]:
    """Where LabelMe looks for ``imagePath``: relative to the JSON file's folder (Windows
    backslashes read as separators), then absolute; then the image's file name beside the
    JSON (a folder moved as a whole)."""
    norm = image_path.replace("\\", "/")
    out: list[Path] = []
    for c in (norm, image_path):
        p = Path(c)
        out.append(p if p.is_absolute() else json_path.parent / p)
        if len(c) > 2 and c[1] == ":":  # a Windows drive path read on another system
            out.append(json_path.parent / Path(norm).name)
    out.append(json_path.parent / Path(norm).name)
    return list(dict.fromkeys(out))


def _find_image(image_path: str, json_path: Path) -> Path:
    for p in image_candidates(image_path, json_path):
        if p.is_file() and p.resolve() != json_path.resolve():
            return p
    raise LabelMeError(
        f"the image {image_path!r} it points to is not found",
        json_path,
        "put the image beside the JSON file, or embed it (imageData)",
    )


def find_image_file(doc: LabelMeDocument, json_path: str | Path) -> Path | None:
    """The image file of a LabelMe document (``imagePath`` resolved as LabelMe does, then a
    same-named image beside the JSON), or None when there is no such file (an embedded
    image, or an ``imagePath`` pointing at the JSON file itself)."""
    jp = Path(json_path)
    if doc.imagePath:
        try:
            return _find_image(doc.imagePath, jp)
        except LabelMeError:
            pass
    for suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".JPG", ".PNG"):
        candidate = jp.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def embedded_image_bytes(doc: LabelMeDocument, json_path: str | Path | None = None) -> bytes | None:
    """The decoded ``imageData`` (the image file's bytes), or None when there is none."""
    if not doc.imageData:
        return None
    try:
        raw = base64.b64decode(doc.imageData, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise LabelMeError(f"'imageData' is not base64 ({exc})", json_path) from exc
    if not raw:
        raise LabelMeError("'imageData' is empty", json_path)
    return raw


def image_suffix(raw: bytes) -> str:
    """File suffix for image bytes (by their signature); ``.png`` when unknown."""
    signatures = {b"\x89PNG": ".png", b"\xff\xd8": ".jpg", b"II*\x00": ".tif", b"MM\x00*": ".tif", b"BM": ".bmp"}
    for sig, ext in signatures.items():
        if raw.startswith(sig):
            return ext
    return ".png"


def _read_with_rasterio(raw: bytes, source: Path) -> np.ndarray:
    """Fallback for images OpenCV cannot decode (e.g. multi-band GeoTIFF)."""
    from rasterio.errors import RasterioIOError
    from rasterio.io import MemoryFile

    try:
        with MemoryFile(raw) as mem, mem.open() as ds:
            data = ds.read(list(range(1, min(3, ds.count) + 1)))
    except (RasterioIOError, ValueError) as exc:
        raise LabelMeError("the image cannot be decoded", source) from exc
    rgb = np.moveaxis(data, 0, -1)
    return rgb[:, :, ::-1] if rgb.shape[2] == 3 else rgb  # BGR, as cv2 gives


def _stretch_to_uint8(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64)
    lo, hi = np.nanpercentile(f, [2, 98])
    return np.clip((f - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)


def encode_image_data(rgb: np.ndarray, ext: str = ".png") -> str:
    """Base64 text of an RGB image encoded as LabelMe embeds it (``imageData``)."""
    import cv2

    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise LabelMeError(f"the image cannot be encoded as {ext}")
    return base64.b64encode(buf.tobytes()).decode("ascii")
