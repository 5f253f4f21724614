"""``WxH`` command-line sizes, parsed and checked in one place."""

from __future__ import annotations

from .errors import UsageError

__all__ = ["parse_wh"]


def parse_wh(text: str | None, flag: str, *, multiple_of: int = 1, minimum: int = 1,
             maximum: int = 16384) -> tuple[int, int] | None:
    """``"640x360"`` (or ``640X360``, ``640*360``) -> ``(640, 360)`` = (width, height); ``None`` stays
    ``None``. Bad text or sizes raise a one-line :class:`UsageError` naming ``flag``."""
    if text is None:
        return None
    try:
        w, h = (int(p) for p in text.strip().lower().replace("*", "x").split("x"))
    except ValueError:
        raise UsageError(f"{flag} must look like WxH (e.g. 640x384), got {text!r}") from None
    if not (minimum <= w <= maximum and minimum <= h <= maximum):
        raise UsageError(f"{flag} {text}: width and height must be in {minimum}..{maximum}")
    if w % multiple_of or h % multiple_of:
        raise UsageError(f"{flag} {text}: width and height must be multiples of {multiple_of}")
    return w, h
