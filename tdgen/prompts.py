"""Prompts for clips: captions files and prompt templates, read strictly and in one place.

A clip's prompt is the caption of its source video when a captions file gives one, else the
prompt template filled with the clip's categories. ``tdgen synth`` and ``tdgen train`` both use
:func:`make_prompt`, so a model is sampled with the prompts it was trained on.

Captions files (``--captions``), chosen by the file name:

* ``*.json``: one JSON object ``{"<video name>": "<caption>", ...}``;
* anything else: one ``<video name><TAB><caption>`` per line; blank lines and lines starting
  with ``#`` are skipped; whitespace around the name and the caption is dropped.

Both must be UTF-8 (a leading byte-order mark is accepted). A file with no bytes (or only
whitespace) is an error, since it is far more often a failed export than an intent; an explicit
``{}`` or a TSV of comments only means "no captions". A video named twice, an empty name or an
empty caption is an error too (the empty prompt is the unconditional one, never meant here).

Templates (``--prompt``) may use ``{categories}`` (the clip's distinct category names in order
of first appearance, ``", "``-joined, ``objects`` when it has none) and ``{video}`` (the source
video's name); ``{{`` and ``}}`` stand for literal braces. Nothing else: no attributes,
indexes, conversions or format specs. :func:`parse_template` checks a template once;
:meth:`PromptTemplate.fill` then fills it for every clip.

Imports no torch.
"""

from __future__ import annotations

import json
import os
import stat
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from .errors import AnnotationError, UsageError

if TYPE_CHECKING:
    from .tracks.clips import Clip

__all__ = [
    "DEFAULT_TEMPLATE_SOURCE",
    "PLACEHOLDERS",
    "PromptTemplate",
    "category_text",
    "load_captions",
    "make_prompt",
    "parse_template",
]

PLACEHOLDERS = ("categories", "video")
DEFAULT_TEMPLATE_SOURCE = "prompt template"
_USE = "use {categories} and {video}, and {{ or }} for a literal brace"


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class PromptTemplate:
    """A checked prompt template: literal text and placeholder names, in order."""

    text: str
    parts: tuple[tuple[str, str | None], ...]  # (literal text, placeholder name or None)

    @property
    def fields(self) -> frozenset[str]:
        """The placeholders the template uses."""
        return frozenset(name for _, name in self.parts if name is not None)

    def fill(self, *, categories: str, video: str) -> str:
        """The template with its placeholders replaced (same text as ``str.format`` gives)."""
        values = {"categories": categories, "video": video}
        return "".join(lit + (values[name] if name is not None else "") for lit, name in self.parts)

    def __str__(self) -> str:
        return self.text


def _brace_position(text: str) -> tuple[int, str] | None:
    """Where the first lone ``}`` or unclosed ``{`` is, for the error message."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "{}" and i + 1 < n and text[i + 1] == c:
            i += 2
        elif c == "{":
            end = text.find("}", i + 1)
            if end < 0:
                return i, "a '{' that is never closed"
            i = end + 1
        elif c == "}":
            return i, "a lone '}'"
        else:
            i += 1
    return None


def parse_template(text: str, *, source: str = DEFAULT_TEMPLATE_SOURCE) -> PromptTemplate:
    """Check ``text`` and return it parsed.

    ``source`` names the template in errors (``"--prompt template"``, ``"prompt_template of
    model/tdgen.json"``).

    Raises:
        UsageError: one line naming the template and what is wrong with it.
    """
    if not isinstance(text, str):
        raise UsageError(f"{source} must be text, got {type(text).__name__}")

    def bad(what: str) -> UsageError:
        return UsageError(f"{source} {text!r}: {what}; {_USE}")

    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        found = _brace_position(text)
        if found is None:  # e.g. "{video!}": braces pair up but the inside is not a field
            raise bad(f"malformed placeholder ({exc})") from None
        pos, what = found
        raise bad(f"{what} at character {pos + 1}") from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in pieces:
        if field is None:
            parts.append((literal, None))
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if conversion is not None:
            raise bad(f"{shown}: conversions (!{conversion}) are not allowed")
        if spec:
            raise bad(f"{shown}: format specs (:{spec}) are not allowed")
        if "." in field:
            raise bad(f"{shown}: attributes are not allowed")
        if "[" in field or "]" in field:
            raise bad(f"{shown}: indexes are not allowed")
        if field == "" or field.isdigit():
            raise bad(f"{shown}: positional placeholders are not allowed, name one")
        if field not in PLACEHOLDERS:
            raise bad(f"unknown placeholder {shown}")
        parts.append((literal, field))
    return PromptTemplate(text=text, parts=tuple(parts))


@lru_cache(maxsize=32)
def _parsed(text: str) -> PromptTemplate:
    return parse_template(text)


def category_text(names: Sequence[str]) -> str:
    """What ``{categories}`` becomes: distinct non-empty names in first-seen order, or ``objects``."""
    distinct = list(dict.fromkeys(n for n in names if n))
    return ", ".join(distinct) if distinct else "objects"


def make_prompt(clip: Clip, template: PromptTemplate | str, captions: Mapping[str, str]) -> str:
    """The caption of the clip's video, else ``template`` filled with the clip's categories.

    A text ``template`` is parsed (and checked) once and reused; pass a :class:`PromptTemplate`
    to name its source in errors.
    """
    caption = captions.get(clip.video_name)
    if caption is not None:
        return caption
    parsed = template if isinstance(template, PromptTemplate) else _parsed(template)
    return parsed.fill(categories=category_text(clip.category_names), video=clip.video_name)


# --------------------------------------------------------------------------- captions files


class _Pairs(list):
    """A JSON object as its (key, value) pairs, so duplicate keys are seen, not silently merged."""


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _quoted(name: str) -> str:
    # JSON quoting keeps control characters escaped, so the message stays on one line.
    return json.dumps(name, ensure_ascii=False)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(path: Path, mode: int) -> AnnotationError:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return AnnotationError(path, None, f"is {kind}, not a regular file")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; special files are refused before opening, so a FIFO cannot hang us."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AnnotationError(path, None, "no such captions file") from None
    except OSError as exc:
        raise AnnotationError(path, None, f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode)
    try:
        # O_NONBLOCK: should the path turn into a FIFO after the stat, opening still returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise AnnotationError(path, None, f"cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        try:
            return f.read()
        except OSError as exc:
            raise AnnotationError(path, None, f"cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, data: bytes) -> str:
    bom = b"\xef\xbb\xbf"
    skip = len(bom) if data.startswith(bom) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise AnnotationError(path, f"line {line}", f"not valid UTF-8 at byte offset {offset} "
                              f"(byte 0x{data[offset]:02x})",
                              hint="re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8") from None


def _check_entry(path: Path, where: str, name: str, caption: str) -> None:
    if not name.strip():
        raise AnnotationError(path, where, "empty video name")
    if not caption.strip():
        raise AnnotationError(path, where, f"empty caption for video {_quoted(name)}",
                              hint="leave the video out to give it the prompt template")


def _parse_json(path: Path, text: str) -> dict[str, str]:
    try:
        obj = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON ({exc.msg})") from None
    if not isinstance(obj, _Pairs):
        raise AnnotationError(path, None, f"expected a JSON object mapping video names to captions, "
                              f"got {_json_type(obj)}")
    out: dict[str, str] = {}
    for name, caption in obj:
        where = f"key {_quoted(name)}"
        if not isinstance(caption, str):
            raise AnnotationError(path, where, f"caption must be a string, got {_json_type(caption)}")
        if name in out:
            raise AnnotationError(path, where, "video named twice")
        _check_entry(path, where, name, caption)
        out[name] = caption
    return out


def _parse_tsv(path: Path, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    seen_content = False
    # split on "\n" only (not str.splitlines) so line numbers match what an editor shows and a
    # form feed or U+2028 inside a caption does not end the line
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            hint = None
            if not seen_content and line.lstrip().startswith(("{", "[")):
                hint = "this looks like JSON; JSON captions files must be named *.json"
            raise AnnotationError(path, f"line {lineno}", "expected '<video name><TAB><caption>' (no tab)", hint)
        seen_content = True
        name, caption = (part.strip() for part in line.split("\t", 1))
        where = f"line {lineno}"
        _check_entry(path, where, name, caption)
        if name in out:
            raise AnnotationError(path, where, f"video {_quoted(name)} already has a caption on line "
                                  f"{first_line[name]}")
        out[name] = caption
        first_line[name] = lineno
    return out


def load_captions(path: str | os.PathLike | None) -> dict[str, str]:
    """``{video name: caption}`` from a JSON or TSV captions file (see the module docstring);
    ``{}`` for ``None``.

    Raises:
        AnnotationError: one line, located (``line 3`` or ``key "x"``) where it can be.
    """
    if path is None:
        return {}
    path = Path(path)
    text = _decode(path, _read_bytes(path))
    if not text.strip():
        raise AnnotationError(path, None, "empty captions file (expected a JSON object or "
                              "'<video name><TAB><caption>' lines)")
    if path.suffix.lower() == ".json":
        return _parse_json(path, text)
    return _parse_tsv(path, text)
