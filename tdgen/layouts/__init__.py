"""New tracklet layouts from an annotation set: transforms, recipes and provenance (``tdgen layouts``).

numpy only (no torch), like :mod:`tdgen.tracks`. :mod:`.transforms` holds the transforms and
their parameters, :mod:`.recipes` the TOML recipes, :mod:`.boxes` the box table and the rules
every result obeys (clipping, depth-order visibility), :mod:`.stats` what the density and
sampling transforms learn from the source, :mod:`.run` the command's pipeline and
:mod:`.provenance` the table written beside the output. docs/layouts.md describes it all.
"""

from .recipes import Recipe, Step, bundled_recipes, load_recipe, parse_recipe
from .run import LayoutsResult, make_layouts, write_layouts
from .transforms import TRANSFORMS

__all__ = ["LayoutsResult", "Recipe", "Step", "TRANSFORMS", "bundled_recipes", "load_recipe", "make_layouts",
           "parse_recipe", "write_layouts"]
