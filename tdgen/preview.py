"""Previews: boxes and track ids drawn over real or generated frames, to eyeball inputs and outputs.

Two outputs, chosen by the file's extension:

``.mp4``
    a video of the selected frames (one video's frames after another), each frame letterboxed
    into one size (``size``, else the first frame's), with the video name and frame number in
    the top-left corner. Encoded with OpenCV's ``mp4v`` codec.
``.png`` / ``.jpg`` / ``.jpeg``
    a contact sheet: one row per video, ``cols`` thumbnails per row sampled evenly over the
    video, each labelled ``<video> #<frame number>``.

Frame images are looked up as ``ROOT / file_name`` for each candidate root in turn, the first
that exists winning: the roots given (``--images``), then the annotation file's directory and
its ``images/`` folder (for a directory input: the directory, its ``images/`` folder and its
parent, which is where a single MOT sequence's ``<seq>/img1/...`` names are relative to). A
frame whose image is not found is drawn on a neutral gray canvas of the frame's size, with a
single warning, so tracklets can be inspected from an annotation file alone.

Every box gets its track's colour (:func:`track_color`: a hash of the id, the same in every
frame and every run), a 2 px outline (thicker on big frames) and a label ``id:<track>
<category>`` on a filled background. Colours are RGB throughout; OpenCV's BGR only appears when
encoding files. OpenCV (``opencv-python-headless``) is imported only when a preview is made.
"""

from __future__ import annotations

import colorsys
import contextlib
import functools
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .atomic import atomic_write_bytes
from .sizes import parse_wh
from .errors import AnnotationError, OutputError, TdgenError, UsageError
from .tracks.trackset import TrackSet

__all__ = [
    "PreviewWarning",
    "track_color",
    "draw_frame",
    "contact_sheet",
    "sheet_shape",
    "render_preview",
    "preview_clip",
    "clip_sheet",
    "load_preview_source",
    "default_image_roots",
    "output_kind",
    "parse_size",
]

VIDEO_EXTS = (".mp4",)
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
GRAY = (128, 128, 128)  # canvas of frames without an image
LETTERBOX = (16, 16, 16)  # padding around letterboxed frames
SHEET_BG = (32, 32, 32)
SHEET_GAP = 4
DEFAULT_TILE_WIDTH = 320
DEFAULT_MAX_VIDEOS = 32
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


class PreviewWarning(UserWarning):
    """Something a preview could not show as asked (missing images, too many videos, ...)."""


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - depends on the install
        raise TdgenError("previews need OpenCV: pip install opencv-python-headless (or tdgen[model])") from None
    return cv2


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


# --------------------------------------------------------------------------- files
def output_kind(path: str | os.PathLike) -> str:
    """``"video"`` or ``"image"`` from the extension; :class:`UsageError` for anything else."""
    ext = Path(path).suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    raise UsageError(f"{path}: unknown preview type {ext or '(no extension)'!r}; use .mp4 for a video or "
                     ".png/.jpg for a contact sheet")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x360"`` -> (640, 360) for ``--size``."""
    return parse_wh(text, "--size", minimum=16, maximum=8192)


def _write_image(rgb: np.ndarray, out: Path) -> None:
    cv2 = _cv2()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ext = out.suffix.lower()
    params = [cv2.IMWRITE_PNG_COMPRESSION, 3] if ext == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 90]
    ok, buf = cv2.imencode(".png" if ext == ".png" else ".jpg", bgr, params)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise OutputError(f"{out}: could not encode the image")
    atomic_write_bytes(out, buf.tobytes())


def _write_video(frames: Iterable[np.ndarray], out: Path, width: int, height: int, fps: float) -> int:
    """Write RGB frames of exactly ``width`` x ``height`` to an mp4, atomically. Returns the count."""
    cv2 = _cv2()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp.mp4", dir=out.parent)
    os.close(fd)
    n = 0
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (int(width), int(height)))
        if not writer.isOpened():
            raise OutputError(f"{out}: OpenCV cannot write mp4 video (mp4v codec unavailable)")
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
                n += 1
        finally:
            writer.release()
        if n == 0 or os.path.getsize(tmp) == 0:
            raise OutputError(f"{out}: no video was written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return n


def _even(v: int) -> int:
    return max(2, v - (v % 2))


# --------------------------------------------------------------------------- sources and frames
def default_image_roots(source: str | os.PathLike | None) -> list[Path]:
    """Where file names of an annotation source are looked up, in order (see the module doc)."""
    if not source:
        return []
    p = Path(source)
    if p.is_dir():
        return [p, p / "images", p.parent]
    return [p.parent, p.parent / "images"]


def load_preview_source(path: str | os.PathLike, fmt: str | None = None) -> TrackSet:
    """Read an annotation source, or the ``annotations.json`` of a synth output directory."""
    from .tracks.io import read_tracks

    p = Path(path)
    if p.is_dir() and (p / "annotations.json").is_file():
        return read_tracks(p / "annotations.json", fmt)
    return read_tracks(p, fmt)


class _Frames:
    """Loads frame images (RGB) of a TrackSet, or gray canvases when they are missing."""

    def __init__(self, ts: TrackSet, roots: list[Path], warn: Callable[[str], None]):
        self.ts = ts
        self.roots = roots or [Path(".")]
        self.warn = warn
        self.missing = 0
        self.size_warned = False
        self.names = ts.category_names()
        self.foff = ts.frame_offsets()
        self._fallback: dict[int, tuple[int, int]] = {}

    def frame_size(self, f: int) -> tuple[int, int]:
        """(width, height) the annotation gives the frame (its video's, or the boxes' extent)."""
        ts = self.ts
        v = int(ts.frames.video[f])
        w, h = int(ts.frames.width[f]), int(ts.frames.height[f])
        if w <= 0 or h <= 0:
            w, h = int(ts.videos.width[v]), int(ts.videos.height[v])
        if w <= 0 or h <= 0:
            if v not in self._fallback:
                vb = ts.boxes.bbox[ts.box_video() == v]
                ok = np.all(np.isfinite(vb), axis=1)
                vb = vb[ok]
                if len(vb):
                    fw = int(np.ceil(max(64.0, float(np.max(vb[:, 0] + vb[:, 2])))))
                    fh = int(np.ceil(max(64.0, float(np.max(vb[:, 1] + vb[:, 3])))))
                else:
                    fw, fh = 640, 480
                self._fallback[v] = (min(fw, 8192), min(fh, 8192))
            w, h = self._fallback[v]
        return w, h

    def find(self, file_name: str) -> Path | None:
        for root in self.roots:
            p = root / file_name
            if p.is_file():
                return p
        return None

    def image(self, f: int) -> np.ndarray:
        cv2 = _cv2()
        name = str(self.ts.frames.file_name[f])
        path = self.find(name) if name else None
        w, h = self.frame_size(f)
        if path is None:
            if self.missing == 0:
                tried = ", ".join(str(r) for r in self.roots)
                self.warn(f"{name or '(no file name)'}: frame image not found (looked in: {tried}); drawing boxes on "
                          "a gray canvas of the frame size (pass --images ROOT to use the images)")
            self.missing += 1
            canvas = np.empty((h, w, 3), dtype=np.uint8)
            canvas[:] = GRAY
            return canvas
        data = np.fromfile(str(path), dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise AnnotationError(path, None, "cannot decode the image (corrupt or not an image file)")
        ih, iw = bgr.shape[:2]
        if (iw, ih) != (w, h) and int(self.ts.frames.width[f]) > 0 and not self.size_warned:
            self.size_warned = True
            self.warn(f"{path}: image is {iw}x{ih} but the annotation says {w}x{h}; boxes are drawn as annotated")
        return np.ascontiguousarray(bgr[..., ::-1])

    def boxes(self, f: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        a, b = int(self.foff[f]), int(self.foff[f + 1])
        cats = self.ts.boxes.category[a:b]
        labels = [self.names.get(int(c), str(int(c))) for c in cats]
        return self.ts.boxes.bbox[a:b], self.ts.boxes.track[a:b], labels

    def title(self, f: int) -> str:
        ts = self.ts
        v = int(ts.frames.video[f])
        num = ts.frames.number[f] if ts.frames.number is not None else np.nan
        n = int(num) if np.isfinite(num) else int(ts.frames.index[f])
        return f"{ts.videos.name[v]} #{n}"


def _select_videos(ts: TrackSet, videos: Sequence[str] | None, max_videos: int | None,
                   warn: Callable[[str], None]) -> list[int]:
    names = [str(n) for n in ts.videos.name.tolist()]
    if videos:
        wanted: list[str] = []
        for v in videos:
            wanted.extend(s.strip() for s in str(v).split(",") if s.strip())
        index: dict[str, int] = {}
        for i, n in enumerate(names):
            index.setdefault(n, i)
        unknown = [w for w in wanted if w not in index]
        if unknown:
            some = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise UsageError(f"{ts.source or 'input'}: no video named {', '.join(map(repr, unknown))} "
                             f"({len(names)} videos: {some})")
        rows: list[int] = []
        for w in wanted:
            if index[w] not in rows:
                rows.append(index[w])
        return rows
    rows = list(range(len(names)))
    if max_videos is not None and len(rows) > max_videos:
        warn(f"showing the first {max_videos} of {len(rows)} videos; choose others with --videos")
        rows = rows[:max_videos]
    return rows


def _sampled(off: np.ndarray, v: int, every: int, max_frames: int | None) -> np.ndarray:
    rows = np.arange(int(off[v]), int(off[v + 1]), every, dtype=np.int64)
    return rows if max_frames is None else rows[:max_frames]


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices into ``range(n)``, evenly spread, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def render_preview(ts: TrackSet, out: str | os.PathLike, *, image_root: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                   videos: Sequence[str] | None = None, max_frames: int | None = None, every: int = 1, cols: int = 8,
                   fps: float = 10, size: tuple[int, int] | None = None, max_videos: int | None = DEFAULT_MAX_VIDEOS,
                   on_warning: Callable[[str], None] | None = None, report: dict | None = None) -> Path:
    """Draw ``ts``'s boxes over its frames into ``out`` (``.mp4`` video or ``.png``/``.jpg`` sheet).

    ``image_root``: root(s) tried before the defaults of :func:`default_image_roots` for the
    ``ts.source``. ``videos``: names to show, in that order (comma-separated names are split);
    else all, up to ``max_videos`` (with a warning). Per video, every ``every``-th frame is taken,
    and of those the first ``max_frames`` (None: all). A sheet shows ``cols`` of them per video,
    evenly spread; a video shows all of them at ``fps``. ``size`` (width, height) is the video's
    frame size or the sheet's tile size. Warnings go to ``on_warning`` (default:
    :class:`PreviewWarning` via :mod:`warnings`); ``report``, when given, is filled with a
    summary. Returns ``out``.
    """
    out = Path(out)
    kind = output_kind(out)
    if every < 1:
        raise UsageError(f"--every must be at least 1, got {every}")
    if cols < 1:
        raise UsageError(f"--cols must be at least 1, got {cols}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {max_frames}")
    if not (fps > 0 and np.isfinite(fps)):
        raise UsageError(f"--fps must be positive, got {fps}")
    if size is not None and (len(size) != 2 or min(size) < 16):
        raise UsageError(f"size must be (width, height) of at least 16 px, got {size}")

    collected: list[str] = []

    def warn(msg: str) -> None:
        collected.append(msg)
        if on_warning is not None:
            on_warning(msg)
        else:
            warnings.warn(msg, PreviewWarning, stacklevel=3)

    if image_root is None:
        given: list[Path] = []
    elif isinstance(image_root, (str, os.PathLike)):
        given = [Path(image_root)]
    else:
        given = [Path(r) for r in image_root]
    roots: list[Path] = []
    for r in given + default_image_roots(ts.source):
        if r not in roots:
            roots.append(r)

    video_rows = _select_videos(ts, videos, max_videos, warn)
    off = ts.video_offsets()
    per_video = [(v, _sampled(off, v, every, max_frames)) for v in video_rows]
    per_video = [(v, rows) for v, rows in per_video if rows.size]
    if not per_video:
        raise UsageError(f"{ts.source or 'input'}: nothing to preview (no frames in the chosen videos)")
    loader = _Frames(ts, roots, warn)
    n_boxes = 0

    if kind == "image":
        tiles: list[list[np.ndarray]] = []
        labels: list[list[str]] = []
        first = per_video[0][1][0]
        if size is not None:
            tw, th = int(size[0]), int(size[1])
        else:
            fw, fh = loader.frame_size(int(first))
            tw = DEFAULT_TILE_WIDTH
            th = int(round(tw * min(max(fh / fw, 0.25), 2.0)))
        for v, rows in per_video:
            row_tiles, row_labels = [], []
            for f in rows[_spread(rows.size, cols)]:
                f = int(f)
                b, t, names = loader.boxes(f)
                n_boxes += len(b)
                row_tiles.append(_render_tile(loader.image(f), b, t, names, tw, th))
                row_labels.append(loader.title(f))
            tiles.append(row_tiles)
            labels.append(row_labels)
        sheet = contact_sheet(tiles, labels, tile_width=tw, tile_height=th)
        _write_image(sheet, out)
        n_frames = sum(len(r) for r in tiles)
        out_size = [int(sheet.shape[1]), int(sheet.shape[0])]
    else:
        first = int(per_video[0][1][0])
        if size is not None:
            W, H = _even(int(size[0])), _even(int(size[1]))
        else:
            W, H = loader.frame_size(first)
            W, H = _even(W), _even(H)

        def frames() -> Iterator[np.ndarray]:
            nonlocal n_boxes
            for _, rows in per_video:
                for f in rows:
                    f = int(f)
                    b, t, names = loader.boxes(f)
                    n_boxes += len(b)
                    img = _render_tile(loader.image(f), b, t, names, W, H)
                    th = _auto_thickness(H, W)
                    scale, weight = _font(th)
                    _put_label(img, loader.title(f), 0, 0, (0, 0, 0), scale=scale, weight=weight, above=False)
                    yield img

        n_frames = _write_video(frames(), out, W, H, fps)
        out_size = [W, H]

    if report is not None:
        report.update({
            "output": str(out), "kind": "video" if kind == "video" else "sheet",
            "videos": len(per_video), "frames": int(n_frames), "boxes": int(n_boxes), "size": out_size,
            "missing_images": loader.missing, "warnings": collected,
        })
    return out


# --------------------------------------------------------------------------- clips (synth --preview)
def _clip_arrays(frames: np.ndarray, boxes_xywh: np.ndarray, mask: np.ndarray | None, track_ids: np.ndarray,
                 labels: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    F = frames.shape[0]
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    ids = np.asarray(track_ids).reshape(-1)
    N = ids.size
    if boxes.shape != (F, N, 4):
        raise ValueError(f"boxes must be (F, N, 4) = ({F}, {N}, 4), got {boxes.shape}")
    m = np.ones((F, N), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != (F, N):
        raise ValueError(f"mask must be (F, N) = ({F}, {N}), got {m.shape}")
    names = [""] * N if labels is None else [str(x) for x in labels]
    if len(names) != N:
        raise ValueError(f"{N} tracks but {len(names)} labels")
    return frames, boxes, m, ids, names


def _clip_frame(frames, boxes, m, ids, names, k: int, width: int, height: int) -> np.ndarray:
    sel = np.flatnonzero(m[k])
    return _render_tile(frames[k], boxes[k, sel], ids[sel], [names[i] for i in sel], width, height)


def preview_clip(frames: np.ndarray, boxes_xywh: np.ndarray, mask: np.ndarray | None, track_ids: np.ndarray,
                 labels: Sequence[str] | None, out_mp4: str | os.PathLike, *, fps: float = 8) -> Path:
    """An mp4 of a generated clip with its boxes: ``frames`` (F, H, W, 3) uint8 RGB, ``boxes_xywh``
    (F, N, 4) in frame pixels, ``mask`` (F, N) true where track n is present in frame k,
    ``track_ids`` (N,), ``labels`` (N,) category names. Written atomically; returns the path."""
    out = Path(out_mp4)
    if output_kind(out) != "video":
        raise UsageError(f"{out}: a clip preview is an .mp4 file")
    frames, boxes, m, ids, names = _clip_arrays(frames, boxes_xywh, mask, track_ids, labels)
    if frames.shape[0] == 0:
        raise ValueError("a clip preview needs at least one frame")
    H, W = frames.shape[1:3]
    We, He = _even(W), _even(H)
    gen = (_clip_frame(frames, boxes, m, ids, names, k, We, He) for k in range(frames.shape[0]))
    _write_video(gen, out, We, He, fps)
    return out


def clip_sheet(frames: np.ndarray, boxes_xywh: np.ndarray, mask: np.ndarray | None, track_ids: np.ndarray,
               labels: Sequence[str] | None, *, cols: int = 8, tile_width: int = 256, title: str | None = None) -> np.ndarray:
    """A one-row contact sheet (RGB array) of up to ``cols`` frames of a clip, evenly spread,
    each labelled ``[<title>] #<frame index>``. Arguments as :func:`preview_clip`."""
    frames, boxes, m, ids, names = _clip_arrays(frames, boxes_xywh, mask, track_ids, labels)
    F, H, W = frames.shape[:3]
    if F == 0:
        raise ValueError("a clip sheet needs at least one frame")
    tw = int(tile_width)
    th = int(round(tw * min(max(H / W, 0.25), 2.0)))
    pick = _spread(F, max(1, int(cols)))
    row = [_clip_frame(frames, boxes, m, ids, names, int(k), tw, th) for k in pick]
    prefix = f"{title} " if title else ""
    return contact_sheet([row], [[f"{prefix}#{int(k)}" for k in pick]], tile_width=tw, tile_height=th)

