"""Which boxes are training targets: a class and confidence filter shared by convert, synth and merge.

A :class:`ClassFilter` sorts every box of a :class:`TrackSet` into one of three outcomes:

* **target**: its category is one of ``classes`` (every category when ``classes`` is None) and its
  conf is at least ``min_conf`` (a box without a conf counts as conf 1). It is kept as it is.
  A box the source already marks ``iscrowd`` keeps that mark when its category is a target class.
* **ignore row**: a target-class box below ``min_conf``, or a box of one of ``ignore_classes``
  (every non-target class when ``ignore_classes`` is None). ``ignore_as`` decides: ``"drop"``
  removes it, ``"crowd"`` keeps it as an ``iscrowd=1`` ignore region under a target category (its
  own when that is a target, else the first target category), ``"keep"`` leaves it an ordinary
  box with its own category.
* anything else (a non-target class that is no ignore class) is dropped.

The output's category list holds the target categories (all of them, even without boxes), plus
the categories of ignore rows kept with ``"keep"``, in the source's order. With ``renumber`` they
are renumbered 1..K in that order, so a detector head's class index is ``category_id - 1``.

:meth:`ClassFilter.for_flavor` gives the defaults per target file: what ByteTrack's MOT17
converter keeps for ``bytetrack`` (pedestrians with conf 1, one category), everything for
``mmdet`` (as mmdet's ``mot2coco`` writes it). See ``docs/mot_classes.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Mapping, Sequence

import numpy as np

from ..errors import UsageError
from .mot_format import MOT_CLASSES
from .trackset import TrackSet

__all__ = [
    "IGNORE_AS",
    "IgnoreAs",
    "MOT_IGNORE_CLASSES",
    "CategoryCount",
    "ClassFilter",
    "FilterReport",
    "classes_except",
    "find_class",
    "is_mot_categories",
    "map_categories",
    "parse_class_list",
    "unknown_class",
]

IgnoreAs = Literal["crowd", "drop", "keep"]
IGNORE_AS: tuple[str, ...] = ("crowd", "drop", "keep")

#: The MOT classes whose boxes are people a tracker should neither be rewarded nor punished
#: for: TrackEval removes the predictions matched to them before scoring. ``crowd`` (13) is a
#: crowd region by its very name. Vehicles and occluders are not among them: those are
#: simply not targets.
MOT_IGNORE_CLASSES: tuple[str, ...] = ("person_on_vehicle", "static_person", "distractor", "reflection", "crowd")


def _norm(name: str) -> str:
    """Names compared loosely: case, spaces and hyphens do not matter ("Person on vehicle")."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def parse_class_list(text: str, flag: str = "--classes") -> tuple[str, ...]:
    """``"pedestrian, static_person"`` as a tuple of names; empty or repeated names are refused."""
    names = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise UsageError(f"{flag}: expected comma-separated class names like 'pedestrian,static_person', "
                         f"got {text!r}")
    seen: set[str] = set()
    for n in names:
        if _norm(n) in seen:
            raise UsageError(f"{flag}: class {n!r} is given twice")
        seen.add(_norm(n))
    return tuple(names)


def is_mot_categories(categories: Sequence[Mapping]) -> bool:
    """True when every category is a MOT Challenge class under its MOT id (1 pedestrian, ...)
    and pedestrian is among them: a file written from MOT ground truth."""
    pairs = {(int(c["id"]), str(c["name"])) for c in categories}
    mot = {(i + 1, n) for i, n in enumerate(MOT_CLASSES)}
    return bool(pairs) and pairs <= mot and (1, "pedestrian") in pairs


def find_class(name: str, categories: Sequence[Mapping]) -> str | None:
    """The source's own spelling of class ``name`` (compared loosely), or ``None`` when the
    source has no such class."""
    loose = None
    for c in categories:
        n = str(c["name"])
        if n == name:
            return n
        if loose is None and _norm(n) == _norm(name):
            loose = n
    return loose


def unknown_class(name: str, categories: Sequence[Mapping], flag: str, whose: str = "the input's") -> UsageError:
    """The one-line error for a class name that ``categories`` do not hold, listing those they do."""
    known = ", ".join(dict.fromkeys(str(c["name"]) for c in categories)) or "(none)"
    return UsageError(f"{flag}: unknown class {name!r}; {whose} classes are: {known}")


def _resolve(names: Sequence[str], categories: Sequence[Mapping], flag: str) -> tuple[str, ...]:
    """The source's own spelling of each of ``names``; an unknown name is a one-line error."""
    out = []
    for n in names:
        found = find_class(n, categories)
        if found is None:
            raise unknown_class(n, categories, flag)
        out.append(found)
    return tuple(dict.fromkeys(out))


def classes_except(categories: Sequence[Mapping], drop: Sequence[str], flag: str = "--drop-categories"
                   ) -> tuple[str, ...]:
    """Every category name of ``categories`` but ``drop`` (checked: an unknown name is an error),
    for a ``ClassFilter(classes=...)`` that removes just those classes."""
    dropped = set(_resolve(drop, categories, flag))
    return tuple(dict.fromkeys(str(c["name"]) for c in categories if str(c["name"]) not in dropped))


@dataclass(frozen=True)
class CategoryCount:
    """What the filter did with the boxes of one source category."""

    id: int
    name: str
    kept: int  # written as they were (targets, and ignore rows under "keep")
    ignored: int  # turned into iscrowd=1 ignore regions
    dropped: int


@dataclass(frozen=True)
class FilterReport:
    """Counts of a :meth:`ClassFilter.apply`, per source category and in total."""

    total: int
    kept: int
    ignored: int
    dropped: int
    per_category: tuple[CategoryCount, ...]
    categories_before: int
    categories_after: int
    renumbered: bool

    @property
    def changed(self) -> bool:
        """True when any box was dropped or turned into an ignore region, or the category list
        changed."""
        return bool(self.ignored or self.dropped or self.categories_before != self.categories_after
                    or self.renumbered)

    def summary(self) -> str:
        """One line: ``kept 2,446 of 4,650 boxes (1,024 as ignore regions); dropped 2,204:
        static_person 1,300, ...``."""
        written = self.kept + self.ignored
        text = f"kept {written:,} of {self.total:,} boxes"
        if self.ignored:
            text += f" ({self.ignored:,} as iscrowd=1 ignore regions)"
        if self.dropped:
            worst = sorted((c for c in self.per_category if c.dropped), key=lambda c: (-c.dropped, c.id))
            shown = ", ".join(f"{c.name} {c.dropped:,}" for c in worst[:4])
            more = f", {len(worst) - 4} more" if len(worst) > 4 else ""
            text += f"; dropped {self.dropped:,} ({shown}{more})"
        if self.categories_before != self.categories_after:
            text += f"; {self.categories_after} of {self.categories_before} categories listed"
        return text

    def as_dict(self) -> dict:
        return {"boxes": self.total, "kept": self.kept, "ignore_regions": self.ignored, "dropped": self.dropped,
                "categories_before": self.categories_before, "categories_after": self.categories_after,
                "renumbered": self.renumbered,
                "per_category": [{"id": c.id, "name": c.name, "kept": c.kept, "ignore_regions": c.ignored,
                                  "dropped": c.dropped} for c in self.per_category]}


@dataclass(frozen=True)
class ClassFilter:
    """Keep the boxes of ``classes`` with conf >= ``min_conf``; see the module docstring.

    ``ClassFilter()`` keeps everything. ``origin`` says where a default came from, for messages
    ("ByteTrack's converter").
    """

    classes: tuple[str, ...] | None = None
    min_conf: float | None = None
    ignore_as: IgnoreAs = "drop"
    ignore_classes: tuple[str, ...] | None = None
    renumber: bool = False
    origin: str = ""

    def __post_init__(self) -> None:
        if self.ignore_as not in IGNORE_AS:
            raise UsageError(f"--ignore-as must be one of {', '.join(IGNORE_AS)}, not {self.ignore_as!r}")
        if self.min_conf is not None and not math.isfinite(self.min_conf):
            raise UsageError(f"--min-conf must be a finite number, got {self.min_conf}")
        if self.classes is not None and not self.classes:
            raise UsageError("--classes: at least one class is needed")

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_flavor(cls, flavor: str | None, source_format: str = "",
                   categories: Sequence[Mapping] | None = None) -> "ClassFilter":
        """The default filter for writing ``flavor`` from a source read as ``source_format``.

        ``bytetrack`` from MOT ground truth (a MOT directory, or a COCO-VID file whose
        categories are MOT classes under their MOT ids) keeps what ByteTrack's converter keeps:
        pedestrians with conf 1, under one category renumbered to id 1. Everything else
        (``mmdet``, ``None``, other sources) keeps every box: mmdet's ``mot2coco`` writes all
        classes and leaves the choice to the dataset config, and for other sources there is no
        known target class.
        """
        mot = source_format == "mot" or (categories is not None and is_mot_categories(categories))
        if not mot:
            return cls()
        if flavor == "bytetrack":
            return cls(classes=("pedestrian",), min_conf=1.0, ignore_as="drop", ignore_classes=MOT_IGNORE_CLASSES,
                       renumber=True, origin="ByteTrack's converter")
        # the MOT ignore classes still matter when the user narrows --classes with --ignore-as crowd
        return cls(ignore_classes=MOT_IGNORE_CLASSES)

    def with_options(self, *, classes: tuple[str, ...] | None = None, min_conf: float | None = None,
                     ignore_as: IgnoreAs | None = None) -> "ClassFilter":
        """This filter with the given fields replaced (``None`` keeps a field); ``origin`` is
        cleared when anything changes, since the result is no longer that default."""
        changes: dict = {}
        if classes is not None:
            changes["classes"] = classes
        if min_conf is not None:
            changes["min_conf"] = float(min_conf)
        if ignore_as is not None:
            changes["ignore_as"] = ignore_as
        if not changes:
            return self
        return replace(self, origin="", **changes)

    @property
    def is_noop(self) -> bool:
        """True when :meth:`apply` cannot change anything."""
        return self.classes is None and self.min_conf is None and not self.renumber

    def describe(self) -> str:
        """What the filter keeps, in words: ``pedestrian boxes with conf 1``."""
        what = ", ".join(self.classes) if self.classes is not None else "all"
        text = f"{what} boxes"
        if self.min_conf is not None:
            text += f" with conf {self.min_conf:g}" if self.min_conf == 1 else f" with conf >= {self.min_conf:g}"
        if self.ignore_as == "crowd":
            text += ", ignore rows as iscrowd=1 regions"
        elif self.ignore_as == "keep" and not self.is_noop:
            text += ", ignore rows as ordinary boxes"
        return text

    def check(self, categories: Sequence[Mapping]) -> "ClassFilter":
        """This filter with ``classes`` and ``ignore_classes`` spelled as in ``categories``;
        a class the source does not have is a :class:`UsageError` listing the ones it has."""
        classes = None if self.classes is None else _resolve(self.classes, categories, "--classes")
        ignore = None
        if self.ignore_classes is not None:
            # the defaults name every MOT ignore class; a source may lack some of them
            known = {_norm(str(c["name"])) for c in categories}
            ignore = _resolve([n for n in self.ignore_classes if _norm(n) in known], categories, "ignore classes")
        return replace(self, classes=classes, ignore_classes=ignore)

    # ------------------------------------------------------------------ applying
    def apply(self, ts: TrackSet) -> tuple[TrackSet, FilterReport]:
        """The filtered set (a new TrackSet; ``ts`` is not changed) and what happened, per category."""
        f = self.check(ts.categories)
        b = ts.boxes
        cat = b.category
        m = cat.size
        listed = [int(c["id"]) for c in ts.categories]
        names = ts.category_names()

        def ids_of(selected: tuple[str, ...] | None, default: np.ndarray) -> np.ndarray:
            if selected is None:
                return default
            wanted = set(selected)
            return np.array([int(c["id"]) for c in ts.categories if str(c["name"]) in wanted], dtype=np.int64)

        used = np.unique(cat)
        all_ids = np.union1d(np.array(listed, dtype=np.int64), used)
        target_ids = ids_of(f.classes, all_ids)
        target_cls = np.isin(cat, target_ids)
        if f.min_conf is not None and b.conf is not None:
            low = b.conf < f.min_conf  # NaN (no conf) compares False: counts as conf 1
        else:
            low = np.zeros(m, dtype=bool)
        crowd_src = b.iscrowd != 0
        target = target_cls & (~low | crowd_src)
        ignore_ids = ids_of(f.ignore_classes, np.setdiff1d(all_ids, target_ids))
        ignore_row = ~target & (target_cls | np.isin(cat, ignore_ids))

        keep = target.copy()
        to_crowd = np.zeros(m, dtype=bool)
        if f.ignore_as == "keep":
            keep |= ignore_row
        elif f.ignore_as == "crowd":
            to_crowd = ignore_row
            keep |= ignore_row

        # the category list: targets, plus the categories of ignore rows kept as they are
        kept_plain = keep & ~to_crowd
        listed_after = set(target_ids.tolist()) | set(np.unique(cat[kept_plain & ~target]).tolist())
        new_categories = [dict(c) for c in ts.categories if int(c["id"]) in listed_after]
        first_target = next((int(c["id"]) for c in ts.categories if int(c["id"]) in set(target_ids.tolist())), None)
        if to_crowd.any() and first_target is None:
            raise UsageError("--ignore-as crowd needs a target class for the ignore regions, and no category "
                             "of the input is one")

        rows = np.flatnonzero(keep)
        boxes = b.take(rows)
        crowd_k = to_crowd[rows]
        if crowd_k.any():  # take() copied the columns: editing them leaves ts as it was
            boxes.iscrowd[crowd_k] = 1
            foreign = crowd_k & ~np.isin(boxes.category, target_ids)
            boxes.category[foreign] = first_target
        renumbered = False
        if f.renumber:
            old = np.array([int(c["id"]) for c in new_categories], dtype=np.int64)
            if not np.array_equal(old, np.arange(1, old.size + 1)):
                order = np.argsort(old, kind="stable")
                pos = np.searchsorted(old[order], boxes.category).clip(0, max(old.size - 1, 0))
                hit = old.size > 0 and old[order][pos] == boxes.category
                boxes.category = np.where(hit, order[pos] + 1, boxes.category).astype(np.int64)
                for i, c in enumerate(new_categories):
                    c["id"] = i + 1
                renumbered = True

        # per-category counts in one pass (a TAO-sized category list times millions of boxes)
        dropped = ~keep
        slot = np.searchsorted(all_ids, cat)
        k = all_ids.size
        n_all, n_kept, n_crowd, n_drop = (np.bincount(slot[mask], minlength=k) for mask in
                                          (np.ones(m, bool), kept_plain, to_crowd, dropped))
        listed_set = set(listed)
        per = [CategoryCount(id=int(cid), name=names.get(int(cid), f"class_{cid}"), kept=int(n_kept[i]),
                             ignored=int(n_crowd[i]), dropped=int(n_drop[i]))
               for i, cid in enumerate(all_ids.tolist()) if n_all[i] or cid in listed_set]
        report = FilterReport(total=m, kept=int(kept_plain.sum()), ignored=int(to_crowd.sum()),
                              dropped=int(dropped.sum()), per_category=tuple(per),
                              categories_before=len(ts.categories), categories_after=len(new_categories),
                              renumbered=renumbered)
        out = replace(ts, boxes=boxes, categories=new_categories, warnings=list(ts.warnings))
        return out, report


def map_categories(ts: TrackSet, mapping: Mapping[str, str], flag: str = "--map") -> TrackSet:
    """Boxes of category ``old`` become category ``new`` for every ``old -> new`` of ``mapping``.

    ``new`` may be an existing category (the two merge; ``old`` leaves the list) or a new name
    (``old`` is renamed, keeping its id; further old names mapped to the same new name merge
    into it). An unknown ``old`` is a :class:`UsageError`.
    """
    if not mapping:
        return ts
    resolved = {_resolve([old], ts.categories, flag)[0]: new for old, new in mapping.items()}
    by_name: dict[str, int] = {}
    for c in ts.categories:
        by_name.setdefault(str(c["name"]), int(c["id"]))
    cats = [dict(c) for c in ts.categories]
    lut: dict[int, int] = {}
    renamed: dict[str, int] = {}  # a new name (compared loosely) -> the id an earlier rename gave it
    for old, new in resolved.items():
        new = new.strip()
        if not new:
            raise UsageError(f"{flag}: {old!r} maps to an empty name")
        old_id = by_name[old]
        target = next((by_name[n] for n in by_name if _norm(n) == _norm(new) and n != old), None)
        if target is None:
            target = renamed.get(_norm(new))
        if target is None:
            for c in cats:
                if str(c["name"]) == old:
                    c["name"] = new
            renamed[_norm(new)] = old_id
        else:
            lut[old_id] = target
    if lut:
        cats = [c for c in cats if int(c["id"]) not in lut]
        category = ts.boxes.category.copy()
        for o, n in lut.items():
            category[ts.boxes.category == o] = n
        boxes = replace(ts.boxes, category=category)
    else:
        boxes = ts.boxes
    return replace(ts, boxes=boxes, categories=cats, warnings=list(ts.warnings))
