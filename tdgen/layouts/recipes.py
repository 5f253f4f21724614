"""Recipes: a TOML list of transform steps, bundled in ``presets/layouts/`` or given as a file.

::

    description = "what this recipe is for"
    min_inside = 0.5          # optional: boxes with less of their area in the frame are dropped

    [[step]]
    transform = "crowd"       # a name from tdgen.layouts.transforms.TRANSFORMS
    ratio = 0.3               # its parameters; a number may be a range [lo, hi]
    p = 1.0                   # optional: probability that the step runs on a copy

Every problem is reported before anything is read or written, as ``<file>: <where>: <what>``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AnnotationError, UsageError
from .boxes import MIN_INSIDE
from .transforms import TRANSFORMS, Param

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Recipe", "Step", "load_recipe", "parse_recipe", "bundled_recipes", "recipes_dir"]

_TOP_KEYS = {"description", "min_inside", "step"}


def recipes_dir() -> Path:
    """The bundled recipes (``tdgen/presets/layouts``; the repository's ``presets/layouts`` is its source)."""
    return Path(__file__).resolve().parents[1] / "presets" / "layouts"


def bundled_recipes() -> dict[str, str]:
    """Bundled recipe name -> its description."""
    out = {}
    for p in sorted(recipes_dir().glob("*.toml")):
        try:
            out[p.stem] = str(tomllib.loads(p.read_text(encoding="utf-8")).get("description", ""))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            out[p.stem] = "(unreadable)"
    return out


@dataclass(frozen=True)
class Step:
    """One transform with its parameters as written (numbers, or ``(lo, hi)`` ranges)."""

    transform: str
    params: dict[str, Any]
    p: float = 1.0

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """The parameters for one copy: ranges drawn (per-item ranges passed on as ``(lo, hi)``)."""
        spec = {q.name: q for q in TRANSFORMS[self.transform].params}
        out: dict[str, Any] = {}
        for name, q in spec.items():
            value = self.params.get(name, q.default)
            if q.per_item:
                out[name] = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
            elif isinstance(value, (tuple, list)):
                lo, hi = value
                out[name] = int(rng.integers(lo, hi + 1)) if q.kind == "int" else round(float(rng.uniform(lo, hi)), 6)
            else:
                out[name] = value
        return out


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str  # the file, for messages
    steps: tuple[Step, ...]
    description: str = ""
    min_inside: float = MIN_INSIDE
    raw: dict = field(default_factory=dict, compare=False)


def _check_number(q: Param, value: Any, where: str, file: str) -> None:
    def bad(what: str) -> AnnotationError:
        return AnnotationError(file, where, f"{q.name}: {what}")

    if q.kind == "bool":
        if not isinstance(value, bool):
            raise bad(f"{value!r} must be true or false")
        return
    if isinstance(value, list):
        if q.kind == "bool" or len(value) != 2:
            raise bad(f"{value!r}: a range is two numbers [lo, hi]")
        for x in value:
            _check_number(q, x, where, file)
        if value[0] > value[1]:
            raise bad(f"{value!r}: lo is above hi")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"{value!r} must be {'an integer' if q.kind == 'int' else 'a number'} (or a range [lo, hi])")
    if q.kind == "int" and not isinstance(value, int):
        raise bad(f"{value!r} must be an integer")
    if not np.isfinite(value):
        raise bad(f"{value!r} must be finite")
    hi_txt = f"{q.hi:g}{')' if q.hi_open else ']'}"
    if (q.lo is not None and value < q.lo) or (q.hi is not None and (value >= q.hi if q.hi_open else value > q.hi)):
        raise bad(f"{value!r} is outside [{q.lo:g}, {hi_txt}")


def parse_recipe(data: dict, file: str, name: str) -> Recipe:
    """Check a recipe's TOML table and build it; :class:`AnnotationError` naming ``file`` and the place."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise AnnotationError(file, None, f"unknown key {unknown[0]!r} (expected description, min_inside, [[step]])")
    min_inside = data.get("min_inside", MIN_INSIDE)
    if isinstance(min_inside, bool) or not isinstance(min_inside, (int, float)) or not 0 < min_inside <= 1:
        raise AnnotationError(file, "min_inside", f"{min_inside!r} must be a number in (0, 1]")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise AnnotationError(file, None, "no [[step]] tables: a recipe lists at least one transform")
    steps = []
    for i, st in enumerate(raw_steps, 1):
        if not isinstance(st, dict):
            raise AnnotationError(file, f"step {i}", "must be a table ([[step]])")
        tname = st.get("transform")
        if not isinstance(tname, str):
            raise AnnotationError(file, f"step {i}", "needs transform = \"<name>\" "
                                  f"(one of {', '.join(TRANSFORMS)})")
        if tname not in TRANSFORMS:
            raise AnnotationError(file, f"step {i}", f"unknown transform {tname!r} (one of {', '.join(TRANSFORMS)})")
        where = f"step {i} ({tname})"
        spec = {q.name: q for q in TRANSFORMS[tname].params}
        params: dict[str, Any] = {}
        p = 1.0
        for key, value in st.items():
            if key == "transform":
                continue
            if key == "p":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise AnnotationError(file, where, f"p: {value!r} must be a probability in [0, 1]")
                p = float(value)
                continue
            if key not in spec:
                known = ", ".join(["p", *spec]) if spec else "p (it has no parameters)"
                raise AnnotationError(file, where, f"unknown parameter {key!r} (known: {known})")
            _check_number(spec[key], value, where, file)
            params[key] = tuple(value) if isinstance(value, list) else value
        steps.append(Step(tname, params, p))
    return Recipe(name=name, source=file, steps=tuple(steps), description=str(data.get("description", "")),
                  min_inside=float(min_inside), raw=data)


def load_recipe(spec: str | Path) -> Recipe:
    """A bundled recipe by name, or a recipe file (a path, or a name ending in ``.toml``)."""
    text = str(spec)
    path = Path(text)
    bundled = recipes_dir() / f"{text}.toml"
    if not (path.suffix == ".toml" or "/" in text or path.is_file()):
        if not bundled.is_file():
            names = ", ".join(bundled_recipes()) or "none"
            raise UsageError(f"--recipe {text!r}: no bundled recipe of that name (bundled: {names}; or pass a "
                             ".toml file)")
        path = bundled
    if not path.is_file():
        raise AnnotationError(path, None, "no such recipe file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise AnnotationError(path, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise AnnotationError(path, None, f"not valid TOML: {e}") from None
    except OSError as e:
        raise AnnotationError(path, None, e.strerror or str(e)) from None
    return parse_recipe(data, str(path), path.stem)
