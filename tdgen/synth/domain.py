"""Is this model the right one for these annotations? One-line warnings before ``synth`` starts.

Two mistakes are easy to make silently: running a model on categories it never saw (the bundled
shapes model on pedestrians), and squashing wide source frames into a square model frame. The
functions here only compute messages; the CLI prints them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Literal, Sequence

from ..modeldir import describe_model  # re-exported: how warnings name a model is modeldir's business
from ..modelinfo import ModelDomain
from ..sizes import parse_wh
from ..errors import UsageError

__all__ = [
    "ASPECT_TOLERANCE",
    "clip_inputs",
    "describe_model",
    "domain_warnings",
    "parse_out_size",
]

# Aspect ratios this far apart (as a ratio, either way) count as different: 16:9 vs 1:1 is, 1920x1080
# vs 1280x736 (a multiple-of-8 round off) is not.
ASPECT_TOLERANCE = 1.10
_SHOWN = 3  # annotation categories or source sizes named in a warning
_SHOWN_MODEL = 6  # model categories named
_WH = re.compile(r"\s*\d+\s*[x*]\s*\d+\s*")


def parse_out_size(text: str | None) -> tuple[int, int] | Literal["source"] | None:
    """``--out-size``: ``"WxH"`` -> (W, H), ``"source"`` -> ``"source"`` (each source video's own
    size), ``None`` -> ``None`` (the model's resolution). Bad text: a one-line :class:`UsageError`."""
    if text is None:
        return None
    if text.strip().lower() == "source":
        return "source"
    if not _WH.fullmatch(text.lower()):
        raise UsageError(f"--out-size must be WxH (e.g. 640x384) or source (each video's own size), got {text!r}")
    return parse_wh(text, "--out-size", minimum=8)


def _norm(name: str) -> str:
    """Category names compare case-, ``_``-, ``-``- and spacing-insensitively ("Traffic_Light" ==
    "traffic light")."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def _listing(names: Sequence[str], shown: int) -> str:
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def _ratio_text(w: int, h: int) -> str:
    g = math.gcd(w, h)
    a, b = w // g, h // g
    if a <= 32 and b <= 32:
        return f"{a}:{b}"
    return f"{w / h:.2f}:1"


def _differs(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(math.log((a[0] / a[1]) / (b[0] / b[1]))) > math.log(ASPECT_TOLERANCE)


def _category_warning(domain: ModelDomain, categories: Sequence[str], model_label: str) -> str | None:
    if not domain.categories:
        return None  # unknown domain (an older model): nothing to compare with, no guess
    known = {_norm(c) for c in domain.categories}
    wanted: dict[str, str] = {}
    for c in categories:
        if c and c.strip():
            wanted.setdefault(_norm(c), c.strip())
    outside = [name for key, name in wanted.items() if key not in known]
    if not outside:
        return None
    trained = _listing(list(domain.categories), _SHOWN_MODEL)
    it = "it" if len(outside) == 1 else "them"
    if len(outside) == len(wanted):
        which = f"the annotations' {_listing(outside, _SHOWN)} {'is' if len(outside) == 1 else 'are'} outside it"
    else:
        which = (f"{len(outside)} of the annotations' {len(wanted)} categories "
                 f"({_listing(outside, _SHOWN)}) {'is' if len(outside) == 1 else 'are'} outside it")
    return f"{model_label} was trained on {trained}; {which}: pass --model DIR with a model trained on {it}"


def _aspect_warning(domain: ModelDomain, source_sizes: Sequence[tuple[int, int]],
                    out_size: tuple[int, int] | None) -> str | None:
    target = out_size or domain.resolution
    if target is None:
        return None  # the size is only known once the model is loaded; nothing to compare with
    counts = Counter((int(w), int(h)) for w, h in source_sizes if int(w) > 0 and int(h) > 0)
    off = [(wh, n) for wh, n in counts.most_common() if _differs(wh, target)]
    if not off:
        return None
    tw, th = target
    where = "--out-size" if out_size else "the model's resolution"
    total = sum(counts.values())
    shown = [f"{w}x{h} ({_ratio_text(w, h)})" for (w, h), _ in off[:_SHOWN]]
    if len(off) > _SHOWN:
        shown.append(f"{len(off) - _SHOWN} more sizes")
    n_off = sum(n for _, n in off)
    videos = "the source videos are" if n_off == total else f"{n_off} of {total} source videos are"
    ratios = list(dict.fromkeys(_ratio_text(w, h) for (w, h), _ in off))
    if len(ratios) == 1:
        (sw, sh), _ = off[0]
        keep = max(8, round(th * sw / sh))  # the output height kept, the width at the source's aspect
        hint = f"pass --out-size {keep}x{th} to keep {ratios[0]}, or --out-size source"
    else:
        hint = "pass --out-size source"
    return (f"{videos} {_and(shown)} but frames will be written at {tw}x{th} ({_ratio_text(tw, th)}, {where}): "
            f"they will be squashed from {_and(ratios[:_SHOWN] + (['others'] if len(ratios) > _SHOWN else []))} to {_ratio_text(tw, th)}, boxes too; {hint} "
            f"to write each video at its own size, or use a model trained at that aspect")


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def domain_warnings(domain: ModelDomain, categories: Sequence[str], source_sizes: Sequence[tuple[int, int]],
                    out_size: tuple[int, int] | Literal["source"] | None, model_label: str) -> list[str]:
    """One-line warnings (without a ``warning:`` prefix) when the annotations do not fit the model.

    * ``categories`` (the names the planned clips use): warned about when any of them is not among
      the model's recorded categories (case-, ``_``- and spacing-insensitive); a model that
      records none (older models) gives no such warning.
    * ``source_sizes`` ((W, H) per source video; 0 = unknown, skipped): warned about when their
      aspect ratio differs from the output's by more than 10%. The output is ``out_size`` when
      given, else the model's resolution; ``"source"`` writes each video at its own size, so
      nothing is squashed in the output and nothing is said.
    """
    out: list[str] = []
    cat = _category_warning(domain, categories, model_label)
    if cat:
        out.append(cat)
    if out_size != "source":
        aspect = _aspect_warning(domain, source_sizes, out_size)
        if aspect:
            out.append(aspect)
    return out


def clip_inputs(clips: Iterable) -> tuple[list[str], list[tuple[int, int]]]:
    """From planned clips (:class:`~tdgen.tracks.clips.Clip`): the category names their tracks use
    (each once, first seen first) and one source (W, H) per source video they come from.

    Only what the clips use counts, so a file that declares all 80 COCO categories but annotates
    people is compared as people.
    """
    names: dict[str, None] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for c in clips:
        for n in c.category_names:
            names.setdefault(str(n), None)
        sizes.setdefault(int(c.video), (int(c.width), int(c.height)))
    return list(names), list(sizes.values())
