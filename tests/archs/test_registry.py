"""Registration in BasicSR's ARCH_REGISTRY and in the mmengine child registry (scope addersr)."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import addersr_plugin  # noqa: F401
from addersr_plugin.archs import ARCH_NAMES, VDSR, AdderEDSR, AdderVDSR, ArchNameClashError, register_arch
from addersr_plugin.archs import vdsr_arch
from addersr_plugin.registry import MODELS
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

REPO = Path(__file__).resolve().parents[2]
CLASSES = {"AdderEDSR": AdderEDSR, "AdderVDSR": AdderVDSR, "VDSR": VDSR}


@pytest.fixture
def restore_registries():
    basicsr_before = {n: ARCH_REGISTRY._obj_map.get(n) for n in ARCH_NAMES}
    mmengine_before = {n: MODELS.module_dict.get(n) for n in ARCH_NAMES}
    module_vdsr = vdsr_arch.VDSR
    yield
    for n in ARCH_NAMES:
        ARCH_REGISTRY._obj_map[n] = basicsr_before[n]
        MODELS._module_dict[n] = mmengine_before[n]
    vdsr_arch.VDSR = module_vdsr


def test_archs_registered_in_basicsr_and_mmengine():
    for name, cls in CLASSES.items():
        assert ARCH_REGISTRY.get(name) is cls
        assert MODELS.get(name) is cls
    net = build_network({"type": "AdderVDSR", "num_feat": 8, "num_layer": 3, "upscale": 2})
    assert isinstance(net, AdderVDSR)
    assert isinstance(MODELS.build(dict(type="VDSR", num_feat=8, num_layer=3)), VDSR)
    assert MODELS.scope == "addersr" and MODELS.parent.scope == "mmengine"


def test_registering_the_same_class_again_is_harmless(restore_registries):
    assert register_arch(VDSR) is VDSR
    assert ARCH_REGISTRY.get("VDSR") is VDSR


def test_module_reload_replaces_its_own_entries(restore_registries):
    reloaded = importlib.reload(vdsr_arch)
    assert reloaded.VDSR is not VDSR
    assert ARCH_REGISTRY.get("VDSR") is reloaded.VDSR
    assert MODELS.get("VDSR") is reloaded.VDSR


def test_name_clash_with_another_package_is_named(restore_registries):
    foreign = type("VDSR", (), {"__module__": "other_plugin.archs"})
    ARCH_REGISTRY._obj_map["VDSR"] = foreign
    with pytest.raises(ArchNameClashError, match=r"cannot register architecture 'VDSR' "
                                                  r"\(addersr_plugin\.archs\.vdsr_arch\.VDSR\) in basicsr's "
                                                  r"ARCH_REGISTRY: the name is already taken by "
                                                  r"other_plugin\.archs\.VDSR"):
        register_arch(VDSR)


def test_name_clash_in_mmengine_registry_is_named(restore_registries):
    foreign = type("AdderEDSR", (), {"__module__": "other_plugin.models"})
    MODELS._module_dict["AdderEDSR"] = foreign
    with pytest.raises(ArchNameClashError, match="mmengine registry .*already taken by other_plugin.models.AdderEDSR"):
        register_arch(AdderEDSR)


def _run_fresh(code: str, tmp_path) -> str:
    """Run ``code`` in a fresh interpreter with the repository importable; return stdout."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_mmengine_build_from_dict_without_importing_plugin(tmp_path):
    out = _run_fresh("""
        import sys
        from mmengine.registry import MODELS
        assert 'addersr_plugin' not in sys.modules
        net = MODELS.build(dict(type='addersr.AdderEDSR', num_in_ch=3, num_out_ch=3, num_feat=8,
                                num_block=1, upscale=3))
        import torch
        print(type(net).__module__, type(net).__name__, tuple(net(torch.rand(1, 3, 5, 7)).shape))
    """, tmp_path)
    assert out.split() == ["addersr_plugin.archs.adder_edsr_arch", "AdderEDSR", "(1,", "3,", "15,", "21)"]


@pytest.mark.slow
def test_mmengine_build_from_config_file(tmp_path):
    (tmp_path / "model_cfg.py").write_text(
        "model = dict(type='addersr.AdderVDSR', num_feat=8, num_layer=4, upscale=2, power_act=False)\n")
    out = _run_fresh("""
        import sys
        from mmengine.config import Config
        from mmengine.registry import MODELS
        cfg = Config.fromfile('model_cfg.py')
        assert 'addersr_plugin' not in sys.modules
        net = MODELS.build(cfg.model)
        from addersr_plugin.nn import PowerActivation
        print(type(net).__name__, sum(isinstance(m, PowerActivation) for m in net.modules()))
    """, tmp_path)
    assert out.split() == ["AdderVDSR", "0"]
