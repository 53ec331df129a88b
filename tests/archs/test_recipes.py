"""One source for each recipe (addersr_plugin/recipes): the arch defaults, the shipped option files
and the demo all follow it, so none of them can drift from the others."""

import inspect
from pathlib import Path

import pytest
import yaml

import addersr_plugin  # noqa: F401
from addersr_plugin import recipes
from addersr_plugin.archs import AdderEDSR, AdderVDSR
from addersr_plugin.cli.demo import RECIPES, model_options

OPTIONS = Path(__file__).resolve().parents[2] / "options"
# shipped AdderEDSR training files (the studies' files are experiment records, tested elsewhere)
SHIPPED = sorted([OPTIONS / "adder_edsr_x4.yml", *(OPTIONS / "train" / "AdderEDSR").glob("*.yml"),
                  *(OPTIONS / "train" / "AdderVDSR").glob("*.yml")])


def _subset(small: dict, big: dict, where: str) -> None:
    for key, value in small.items():
        assert key in big, f"{where}: {key} missing"
        if isinstance(value, dict):
            _subset(value, big[key], f"{where}.{key}")
        else:
            assert big[key] == value, f"{where}.{key} is {big[key]!r}, the recipe says {value!r}"


def test_recipes_are_the_known_ones():
    assert recipes.names() == ["adder_edsr", "adder_edsr_paper", "adder_vdsr"]
    with pytest.raises(recipes.RecipeError, match="unknown recipe 'nope'; known: adder_edsr, adder_edsr_paper, adder_vdsr"):
        recipes.load("nope")


@pytest.mark.parametrize("arch, name", [(AdderEDSR, "adder_edsr"), (AdderVDSR, "adder_vdsr")])
def test_arch_defaults_are_the_recipe(arch, name):
    defaults = {k: p.default for k, p in inspect.signature(arch.__init__).parameters.items()}
    for key, value in recipes.network_options(name).items():
        assert defaults[key] == value, f"{arch.__name__}'s default {key}={defaults[key]!r}, the recipe says {value!r}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_option_files_follow_a_recipe(path):
    opt = yaml.safe_load(path.read_text())
    name = "adder_vdsr" if "AdderVDSR" in path.stem else "adder_edsr_paper" if "paper" in path.stem else "adder_edsr"
    _subset(recipes.load(name), opt, path.name)


def test_demo_options_follow_the_recipe():
    data = {k: k for k in ("train_gt", "train_lq", "val_gt", "val_lq")}
    for choice, name in RECIPES.items():
        opt = model_options("x", {"type": "AdderEDSR", "num_feat": 8, "num_block": 1}, data, 10, 2, 24, 1e-3,
                            name, 4)
        _subset(recipes.load(name), opt, f"demo --recipe {choice}")
        assert opt["scale"] == opt["network_g"]["upscale"] == 4
    cnn = model_options("y", {"type": "EDSR", "num_feat": 8, "num_block": 1}, data, 10, 2, 24, 1e-3)
    assert "adder_lr_mult" not in cnn["train"]["optim_g"] and "second_shortcut" not in cnn["network_g"]


def test_merge_is_recursive_and_the_recipe_wins():
    opt = {"train": {"optim_g": {"lr": 1e-3, "adder_lr_mult": 1}}, "network_g": {"type": "AdderEDSR", "num_feat": 8}}
    recipes.apply(opt, "adder_edsr")
    mult = recipes.load("adder_edsr")["train"]["optim_g"]["adder_lr_mult"]
    assert mult != 1 and opt["train"]["optim_g"] == {"lr": 1e-3, "adder_lr_mult": mult}
    assert opt["network_g"]["num_feat"] == 8 and opt["network_g"]["image_skip"] is True
