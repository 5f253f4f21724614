"""Recipes: the bundled ones load and are packaged; bad ones fail with the file and the place."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.errors import AnnotationError, UsageError
from tdgen.layouts.recipes import bundled_recipes, load_recipe, recipes_dir

from layouts_data import ROOT


def test_packaged_recipes_mirror_the_repository_folder():
    repo = {p.name: p.read_bytes() for p in (ROOT / "presets" / "layouts").glob("*.toml")}
    packaged = {p.name: p.read_bytes() for p in recipes_dir().glob("*.toml")}
    assert repo == packaged
    assert {"hard-cases.toml", "mirror.toml", "reverse.toml"} <= set(repo)


def test_package_data_ships_the_recipes():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"presets/layouts/*.toml"' in text


@pytest.mark.parametrize("name", sorted(bundled_recipes()))
def test_every_bundled_recipe_loads(name):
    r = load_recipe(name)
    assert r.steps and r.description and r.name == name


def test_hard_cases_is_crowd_cross_hide():
    assert [s.transform for s in load_recipe("hard-cases").steps] == ["crowd", "cross", "hide"]


def _write(tmp_path, text: str):
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, where, what", [
    ('[[step]]\ntransform = "spin"\n', "step 1", "unknown transform 'spin'"),
    ('[[step]]\ntransform = "mirror"\n[[step]]\ntransform = "thin"\nfraction = 1.5\n', "step 2 (thin)",
     "fraction: 1.5 is outside [0, 1]"),
    ('[[step]]\ntransform = "speed"\nfactor = 0\n', "step 1 (speed)", "factor: 0 is outside [0.25, 4]"),
    ('[[step]]\ntransform = "hide"\nk = [20, 5]\n', "step 1 (hide)", "lo is above hi"),
    ('[[step]]\ntransform = "hide"\nk = 2.5\n', "step 1 (hide)", "must be an integer"),
    ('[[step]]\ntransform = "zoom"\nscal = 2\n', "step 1 (zoom)", "unknown parameter 'scal'"),
    ('[[step]]\ntransform = "mirror"\np = 2\n', "step 1 (mirror)", "p: 2 must be a probability"),
    ('[[step]]\ntransform = "cross"\nsame_category = 1\n', "step 1 (cross)", "must be true or false"),
    ('description = "nothing"\n', None, "no [[step]] tables"),
    ('steps = 1\n', None, "unknown key 'steps'"),
    ('[[step]]\ntransform = \n', None, "not valid TOML"),
])
def test_bad_recipes_name_the_file_and_the_place(tmp_path, text, where, what):
    p = _write(tmp_path, text)
    with pytest.raises(AnnotationError) as e:
        load_recipe(p)
    assert e.value.file == str(p)
    assert e.value.where == where
    assert what in e.value.what
    assert "\n" not in str(e.value)


def test_an_unknown_bundled_name_lists_the_bundled_ones():
    with pytest.raises(UsageError, match="hard-cases.*mirror"):
        load_recipe("no-such-recipe")


def test_ranges_are_drawn_per_copy_within_bounds(tmp_path):
    r = load_recipe(_write(tmp_path, '[[step]]\ntransform = "pan"\ndx = [-0.5, 0.5]\n'))
    draws = [r.steps[0].draw(np.random.default_rng(s))["dx"] for s in range(50)]
    assert all(-0.5 <= d <= 0.5 for d in draws) and len(set(draws)) > 40
    assert r.steps[0].draw(np.random.default_rng(0))["dy"] == 0.0  # the default
