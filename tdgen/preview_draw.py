"""Drawing for previews: boxes and track ids over a frame, letterboxed tiles and contact sheets.

Every box gets its track's colour (:func:`track_color`: a hash of the id, the same in every
frame and every run), a 2 px outline (thicker on big frames) and a label ``id:<track>
<category>`` on a filled background. Images are RGB uint8 arrays; OpenCV
(``opencv-python-headless``) is imported only when something is drawn.
"""

from __future__ import annotations

import colorsys
import functools
from typing import Sequence

import numpy as np

from .imageops import opencv

__all__ = ["DEFAULT_TILE_WIDTH", "LETTERBOX", "SHEET_BG", "SHEET_GAP", "contact_sheet", "draw_frame", "sheet_shape",
           "track_color"]

LETTERBOX = (16, 16, 16)  # padding around letterboxed frames
SHEET_BG = (32, 32, 32)
SHEET_GAP = 4
DEFAULT_TILE_WIDTH = 320
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _cv2():
    return opencv("previews")


# --------------------------------------------------------------------------- colours and drawing
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=65536)
def track_color(track_id: int) -> tuple[int, int, int]:
    """A saturated RGB colour for a track id: a fixed hash, so the same in every frame and run."""
    h = _splitmix64(int(track_id) & _MASK64)
    hue = (h & 0xFFFF) / 65536.0
    sat = 0.65 + 0.35 * ((h >> 16) & 0xFF) / 255.0
    val = 0.80 + 0.20 * ((h >> 24) & 0xFF) / 255.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _auto_thickness(height: int, width: int) -> int:
    return max(2, int(round(max(height, width) / 480)))


def _text_color(bg: Sequence[int]) -> tuple[int, int, int]:
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only.
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _font(thickness: int) -> tuple[float, int]:
    return 0.15 * thickness + 0.1, 1 if thickness <= 3 else 2


def _put_label(img: np.ndarray, text: str, x: int, y: int, bg: Sequence[int], *, scale: float, weight: int,
               above: bool = True) -> None:
    """Text on a filled box whose bottom-left is (x, y) (``above``) or top-left is (x, y)."""
    cv2 = _cv2()
    text = _ascii(text)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, weight)
    pad = max(1, weight)
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    H, W = img.shape[:2]
    x = int(min(max(x, 0), max(W - bw, 0)))
    top = y - bh if above else y
    if above and top < 0:  # no room above: inside, under the top edge
        top = y
    top = int(min(max(top, 0), max(H - bh, 0)))
    cv2.rectangle(img, (x, top), (x + bw - 1, top + bh - 1), tuple(int(c) for c in bg), -1)
    cv2.putText(img, text, (x + pad, top + pad + th), _FONT, scale, _text_color(bg), weight, cv2.LINE_AA)


def draw_frame(image: np.ndarray, boxes_xywh: np.ndarray, track_ids: np.ndarray, labels: Sequence[str] | None = None,
               *, thickness: int | None = None) -> np.ndarray:
    """Draw boxes over an (H, W, 3) uint8 RGB image and return the new image (the input is kept).

    Each box is outlined in :func:`track_color` of its track id and labelled
    ``id:<track> <label>`` on a filled background (``labels[i]`` is typically the category
    name; ``None`` or ``""`` labels show the id alone). ``thickness`` defaults to 2 px, more on
    frames larger than 960 px. Boxes with a NaN coordinate are skipped.
    """
    cv2 = _cv2()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    ids = np.asarray(track_ids).reshape(-1)
    if len(ids) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(ids)} track ids")
    if labels is not None and len(labels) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    out = np.ascontiguousarray(image).copy()
    H, W = out.shape[:2]
    t = int(thickness) if thickness is not None else _auto_thickness(H, W)
    t = max(1, t)
    scale, weight = _font(t)
    for i in range(len(boxes)):
        x, y, w, h = boxes[i]
        if not np.all(np.isfinite(boxes[i])):
            continue
        color = track_color(int(ids[i]))
        # Clamp far-away coordinates: OpenCV takes int32 points.
        x0 = int(round(min(max(x, -4 * W), 5 * W)))
        y0 = int(round(min(max(y, -4 * H), 5 * H)))
        x1 = int(round(min(max(x + w, -4 * W), 5 * W))) - 1
        y1 = int(round(min(max(y + h, -4 * H), 5 * H))) - 1
        x1, y1 = max(x1, x0), max(y1, y0)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, t, cv2.LINE_8)
        if x1 < 0 or y1 < 0 or x0 >= W or y0 >= H:
            continue  # wholly outside: no label
        label = str(labels[i]) if labels is not None and labels[i] is not None else ""
        text = f"id:{int(ids[i])} {label}".strip()
        _put_label(out, text, x0 - t // 2, y0 - t // 2, color, scale=scale, weight=weight)
    return out


def _fit(image: np.ndarray, width: int, height: int, bg: Sequence[int] = LETTERBOX) -> tuple[np.ndarray, float, int, int]:
    """Letterbox ``image`` into ``width`` x ``height``: (canvas, scale, x offset, y offset)."""
    cv2 = _cv2()
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(image), 1.0, 0, 0
    s = min(width / w, height / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = bg
    ox, oy = (width - nw) // 2, (height - nh) // 2
    canvas[oy:oy + nh, ox:ox + nw] = small
    return canvas, s, ox, oy


def _render_tile(image: np.ndarray, boxes: np.ndarray, ids: np.ndarray, labels: Sequence[str] | None,
                 width: int, height: int, thickness: int | None = None) -> np.ndarray:
    """Letterbox first, then draw (so outlines and text keep their pixel size on thumbnails)."""
    canvas, s, ox, oy = _fit(image, width, height)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * s
    b[:, 0] += ox
    b[:, 1] += oy
    return draw_frame(canvas, b, ids, labels, thickness=thickness)


# --------------------------------------------------------------------------- contact sheets
def _label_height(tile_width: int) -> int:
    cv2 = _cv2()
    scale, weight = _sheet_font(tile_width)
    (_, th), base = cv2.getTextSize("Ag#0", _FONT, scale, weight)
    return th + base + 6


def _sheet_font(tile_width: int) -> tuple[float, int]:
    return max(0.35, min(1.0, tile_width / 640)), 1


def sheet_shape(rows: int, cols: int, tile_width: int, tile_height: int, *, labelled: bool = True) -> tuple[int, int]:
    """(height, width) of a :func:`contact_sheet` of ``rows`` x ``cols`` tiles."""
    lh = _label_height(tile_width) if labelled else 0
    return (SHEET_GAP + rows * (lh + tile_height + SHEET_GAP), SHEET_GAP + cols * (tile_width + SHEET_GAP))


def contact_sheet(tiles: list[list[np.ndarray]], labels: list[list[str]] | None = None, *,
                  tile_width: int = DEFAULT_TILE_WIDTH, tile_height: int | None = None) -> np.ndarray:
    """A grid of RGB thumbnails: ``tiles[r][c]``, each letterboxed into ``tile_width`` x
    ``tile_height`` (default: the median aspect of the tiles), with ``labels[r][c]`` written in a
    strip above it. Rows may be of different lengths; the grid is as wide as the longest.
    """
    cv2 = _cv2()
    rows = [list(r) for r in tiles]
    all_tiles = [t for r in rows for t in r]
    if not all_tiles:
        raise ValueError("a contact sheet needs at least one tile")
    if labels is not None and [len(r) for r in labels] != [len(r) for r in rows]:
        raise ValueError("labels must have the shape of tiles")
    tw = int(tile_width)
    if tile_height is None:
        aspect = float(np.median([t.shape[0] / t.shape[1] for t in all_tiles]))
        tile_height = int(round(tw * min(max(aspect, 0.25), 2.0)))
    th = int(tile_height)
    ncols = max(len(r) for r in rows)
    labelled = labels is not None
    lh = _label_height(tw) if labelled else 0
    H, W = sheet_shape(len(rows), ncols, tw, th, labelled=labelled)
    sheet = np.empty((H, W, 3), dtype=np.uint8)
    sheet[:] = SHEET_BG
    scale, weight = _sheet_font(tw)
    for r, row in enumerate(rows):
        y = SHEET_GAP + r * (lh + th + SHEET_GAP)
        for c, tile in enumerate(row):
            x = SHEET_GAP + c * (tw + SHEET_GAP)
            img, _, _, _ = _fit(np.asarray(tile, dtype=np.uint8), tw, th)
            sheet[y + lh:y + lh + th, x:x + tw] = img
            if labelled:
                text = _ascii(str(labels[r][c]))
                # Shorten from the left until it fits the tile (the frame number is at the end).
                while len(text) > 4 and cv2.getTextSize(text, _FONT, scale, weight)[0][0] > tw - 4:
                    text = "~" + text[2:]
                (_, tth), base = cv2.getTextSize(text, _FONT, scale, weight)
                cv2.putText(sheet, text, (x + 2, y + 3 + tth), _FONT, scale, (235, 235, 235), weight, cv2.LINE_AA)
    return sheet
