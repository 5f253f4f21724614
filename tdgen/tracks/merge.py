"""Merging training sets: a base COCO-VID set plus extra (e.g. synthetic) sets.

Rules: the base file is kept as it is (its categories, order and
flavour); every id of an extra set is offset past the running maximum, so nothing collides;
categories are matched by name; image paths and video names of each extra get a prefix; the
result is checked for unique ids before it is written.

The extra sets' categories can be edited before they are matched: ``drop_categories`` removes
categories with their boxes (and so the tracks left with no box), ``category_map`` renames
``old -> new`` (several old names onto one new name merge those categories; a new name the
extra set already has merges the two). Both use the class rules of :mod:`tdgen.tracks.classes`
(names compared loosely, see ``docs/mot_classes.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from .classes import ClassFilter, classes_except, find_class, map_categories, unknown_class
from .cocovid_write import _ids_or_renumber
from ..errors import AnnotationError, OutputError, UsageError
from .trackset import Boxes, Frames, TrackSet, Videos

__all__ = ["MergeOptions", "merge_tracksets", "subsample_videos", "subsample_rows", "CategoryMerge",
           "check_category_edits", "edit_categories"]

DROP_FLAG, MAP_FLAG = "--drop-categories", "--map"


@dataclass(frozen=True)
class MergeOptions:
    prefixes: tuple[str, ...] = ()  # one for all extras, or one per extra
    add_categories: bool = False
    ratio: float | None = None  # keep this fraction of each extra's videos
    max_videos: int | None = None  # keep at most this many videos of each extra
    seed: int = 0
    drop_categories: tuple[str, ...] = ()  # categories of the extras removed with their boxes
    category_map: Mapping[str, str] = field(default_factory=dict)  # extras' category old name -> new name

    @property
    def edits_categories(self) -> bool:
        """True when the extra sets' categories are dropped or mapped before matching."""
        return bool(self.drop_categories or self.category_map)


def check_category_edits(extra_categories: Sequence[Sequence[Mapping]], options: MergeOptions) -> None:
    """Every name of ``drop_categories`` and ``category_map`` must be a class of some extra set
    (else a :class:`UsageError` naming the classes there are), and none may be both dropped and
    mapped."""
    for names, flag in ((options.drop_categories, DROP_FLAG), (list(options.category_map), MAP_FLAG)):
        for name in names:
            if all(find_class(name, cats) is None for cats in extra_categories):
                every = [c for cats in extra_categories for c in cats]
                raise unknown_class(name, every, flag, "the extra sets'")
    for cats in extra_categories:
        dropped = {find_class(n, cats) for n in options.drop_categories} - {None}
        for old in options.category_map:
            if find_class(old, cats) in dropped:
                raise UsageError(f"{MAP_FLAG}: {old!r} is dropped by {DROP_FLAG} too; give it to one of them")


def edit_categories(ts: TrackSet, options: MergeOptions) -> TrackSet:
    """An extra set with ``options.drop_categories`` removed and ``options.category_map`` applied
    (the names it lacks are skipped: :func:`check_category_edits` checked them against every
    extra set). What was dropped is counted in one warning line."""
    found = (find_class(n, ts.categories) for n in options.drop_categories)
    drop = list(dict.fromkeys(n for n in found if n is not None))  # the set's own spelling
    if drop:
        tracks_before = ts.num_tracks
        keep = classes_except(ts.categories, drop, DROP_FLAG)
        if keep:
            ts, report = ClassFilter(classes=keep).apply(ts)
            text = report.summary()
        else:  # every category dropped: the videos stay, without boxes
            text = f"kept 0 of {ts.num_boxes:,} boxes; no category listed"
            ts = replace(ts, boxes=ts.boxes.take(np.zeros(0, np.int64)), categories=[], warnings=list(ts.warnings))
        lost = tracks_before - ts.num_tracks
        ts.warnings.append(f"{DROP_FLAG} {', '.join(drop)}: {text}; {lost:,} tracks left with no box dropped")
    mapping = {old: new for old, new in options.category_map.items() if find_class(old, ts.categories) is not None}
    return map_categories(ts, mapping, MAP_FLAG) if mapping else ts


def subsample_rows(n: int, ratio: float | None, max_videos: int | None, seed: int) -> np.ndarray | None:
    """The sorted video rows a seeded subsample keeps, or ``None`` to keep all ``n``."""
    k = n
    if ratio is not None:
        if not 0 < ratio <= 1:
            raise UsageError(f"--ratio must be in (0, 1], got {ratio}")
        k = min(k, max(1, int(round(n * ratio)))) if n else 0
    if max_videos is not None:
        if max_videos < 0:
            raise UsageError(f"--max-videos must be >= 0, got {max_videos}")
        k = min(k, max_videos)
    if k == n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))


def subsample_videos(ts: TrackSet, ratio: float | None, max_videos: int | None, seed: int) -> TrackSet:
    """Seeded subset of whole videos (order kept)."""
    rows = subsample_rows(ts.num_videos, ratio, max_videos, seed)
    return ts if rows is None else ts.select_videos(rows)


def _join(prefix: str, name: str) -> str:
    if not prefix:
        return name
    return prefix.rstrip("/") + "/" + name.lstrip("/")


def prefixed(prefix: str, names: np.ndarray) -> np.ndarray:
    """``names`` (an object array of str) under ``prefix`` (what :func:`_join` does to each)."""
    out = np.empty(len(names), dtype=object)
    if not prefix:
        out[:] = [str(n) for n in names.tolist()]
        return out
    head = prefix.rstrip("/") + "/"
    out[:] = [head + str(n).lstrip("/") for n in names.tolist()]
    return out


def check_prefixes(n_extras: int, prefixes: Sequence[str]) -> None:
    if len(prefixes) not in (0, 1, n_extras):
        raise UsageError(f"give one --prefix for all extra sets or one per extra set "
                         f"({n_extras}), not {len(prefixes)}")


def prefix_for(prefixes: Sequence[str], e: int) -> str:
    """The prefix of extra set ``e``."""
    return prefixes[0] if len(prefixes) == 1 else (prefixes[e] if prefixes else "")


class CategoryMerge:
    """The base's categories, matched by name with each extra set's (and grown on request)."""

    def __init__(self, base_categories: Sequence[dict], source: str):
        self.categories = [dict(c) for c in base_categories]
        self.by_name = {str(c["name"]): int(c["id"]) for c in self.categories}
        if len(self.by_name) != len(self.categories):
            raise AnnotationError(source, "categories", "two categories share a name; cannot match by name")

    def add(self, categories: Sequence[dict], used: np.ndarray, source: str,
            add_categories: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(source ids, merged ids)``, sorted by source id, for an extra set whose boxes use the
        category ids ``used``. A used category the base lacks is an error unless ``add_categories``."""
        used_set = set(np.asarray(used).tolist())
        mapping: dict[int, int] = {}
        for c in categories:
            name = str(c["name"])
            if name not in self.by_name:
                if int(c["id"]) not in used_set:
                    continue
                if not add_categories:
                    raise AnnotationError(source, "categories", f"category {name!r} is not in the base set "
                                          f"({', '.join(sorted(self.by_name)) or 'none'})",
                                          hint="pass --add-categories to append it")
                new_id = max([int(x["id"]) for x in self.categories], default=0) + 1
                self.categories.append({**c, "id": new_id})
                self.by_name[name] = new_id
            mapping[int(c["id"])] = self.by_name[name]
        src_ids = np.array(sorted(mapping), dtype=np.int64)
        dst_ids = np.array([mapping[i] for i in src_ids], dtype=np.int64)
        return src_ids, dst_ids


def merge_tracksets(base: TrackSet, extras: Sequence[TrackSet], options: MergeOptions = MergeOptions()) -> TrackSet:
    """Return ``base`` followed by every extra set, with ids offset and categories matched by name."""
    prefixes = options.prefixes
    check_prefixes(len(extras), prefixes)
    if options.edits_categories:
        check_category_edits([ts.categories for ts in extras], options)
    cats = CategoryMerge(base.categories, base.source)

    vid_ids = [_ids_or_renumber(base.videos.id)]
    img_ids = [_ids_or_renumber(base.frames.id)]
    ann_ids = [_ids_or_renumber(base.boxes.id)]
    btrack = base.boxes.track
    if btrack.size and btrack.min() < 1:
        btrack = np.unique(btrack, return_inverse=True)[1].astype(np.int64) + 1
    tracks = [btrack]
    cat_cols = [base.boxes.category]
    videos, frames, boxes = [base.videos], [base.frames], [base.boxes]
    warnings = list(base.warnings)

    def top(parts: list[np.ndarray]) -> int:
        return max((int(p.max()) for p in parts if p.size), default=0)

    for e, ts in enumerate(extras):
        ts = subsample_videos(ts, options.ratio, options.max_videos, options.seed + e)
        if options.edits_categories:
            ts = edit_categories(ts, options)
        prefix = prefix_for(prefixes, e)
        src_ids, dst_ids = cats.add(ts.categories, np.unique(ts.boxes.category), ts.source, options.add_categories)
        cat = dst_ids[np.searchsorted(src_ids, ts.boxes.category)] if ts.num_boxes else ts.boxes.category
        cat_cols.append(cat)

        vid_ids.append(_ids_or_renumber(ts.videos.id) - 1 + top(vid_ids) + 1)
        img_ids.append(_ids_or_renumber(ts.frames.id) - 1 + top(img_ids) + 1)
        ann_ids.append(_ids_or_renumber(ts.boxes.id) - 1 + top(ann_ids) + 1)
        t = ts.boxes.track
        t_rank = np.unique(t, return_inverse=True)[1].astype(np.int64) if t.size else t
        tracks.append(t_rank + top(tracks) + 1)
        videos.append(replace(ts.videos, name=prefixed(prefix, ts.videos.name)))
        frames.append(replace(ts.frames, file_name=prefixed(prefix, ts.frames.file_name)))
        boxes.append(ts.boxes)
        warnings.extend(f"{ts.source}: {w}" for w in ts.warnings)

    v_off = np.cumsum([0] + [len(v) for v in videos])
    f_off = np.cumsum([0] + [len(f) for f in frames])
    merged_v = Videos.concat(videos)
    merged_f = Frames.concat(frames)
    merged_b = Boxes.concat(boxes)
    merged_v.id = np.concatenate(vid_ids)
    merged_f.id = np.concatenate(img_ids)
    merged_f.video = np.concatenate([f.video + v_off[i] for i, f in enumerate(frames)])
    merged_b.id = np.concatenate(ann_ids)
    merged_b.track = np.concatenate(tracks)
    merged_b.category = np.concatenate(cat_cols)
    merged_b.frame = np.concatenate([b.frame + f_off[i] for i, b in enumerate(boxes)])
    out = TrackSet(videos=merged_v, frames=merged_f, boxes=merged_b, categories=cats.categories,
                   meta=dict(base.meta), source=base.source, source_format=base.source_format,
                   warnings=warnings, style=dict(base.style))
    _check_unique(out)
    return out


def _check_unique(ts: TrackSet) -> None:
    for what, ids in (("video", ts.videos.id), ("image", ts.frames.id), ("annotation", ts.boxes.id)):
        if np.unique(ids).size != ids.size:
            raise OutputError(f"merge produced duplicate {what} ids (a bug: please report it)")
    check_names(ts.videos.name, ts.frames.file_name)
    ts.check()


def check_names(video_names: np.ndarray, file_names: np.ndarray) -> None:
    """Two videos with one name, or two images with one file name, cannot be told apart."""
    names = video_names.tolist()
    if len(set(names)) != len(names):
        seen: set = set()
        dups = {n for n in names if n in seen or seen.add(n)}
        dup = next(n for n in names if n in dups)
        raise OutputError(f"two videos would be named {dup!r}; give the extra sets a --prefix")
    files = file_names.tolist()
    if len(set(files)) != len(files):
        raise OutputError("two images would share a file name; give the extra sets a --prefix")
