"""COCO-VID in both flavours, read into a TrackSet and written back: the format's public names.

Flavours:

* ``mmdet`` (OpenMMLab: mmdet 3.x, mmtracking, QDTrack): 0-based ``frame_id``, ``instance_id``,
  ``videos[].name``, ``mot_frame_id``/``visibility``/``mot_conf`` when MOT-derived.
* ``bytetrack`` (ByteTrack, OC-SORT, CenterTrack): 1-based ``frame_id``, ``track_id``,
  ``videos[].file_name``, ``prev_image_id``/``next_image_id``.

The reader auto-detects the flavour; the writer writes what every one of those tools reads.
Where things are:

* :mod:`tdgen.tracks.cocovid_read`: :func:`read_cocovid` and :func:`parse_cocovid`, the fast
  (pyarrow: :mod:`tdgen.tracks.arrowjson`, :mod:`tdgen.tracks.arrowcols`) and the exact
  (orjson) paths;
* :mod:`tdgen.tracks.cocovid_rules`: the rules every value follows, and the exact path's
  record handlers;
* :mod:`tdgen.tracks.cocovid_build`: the TrackSet built from the columns, table by table;
* :mod:`tdgen.tracks.cocovid_checks`: annotations against images, categories and videos, and
  the tracks (shared with the streaming merge);
* :mod:`tdgen.tracks.cocovid_write`: :func:`write_cocovid`, :func:`cocovid_dict` and the
  document's rules (:class:`cocovid_write.CocovidDoc`).
"""

from __future__ import annotations

from .cocovid_read import FAST_PATH_BYTES, Flavor, detect_flavor, parse_cocovid, read_cocovid
from .cocovid_write import FLAVORS, cocovid_dict, write_cocovid

__all__ = ["read_cocovid", "parse_cocovid", "write_cocovid", "cocovid_dict", "detect_flavor", "Flavor",
           "FLAVORS", "FAST_PATH_BYTES"]
