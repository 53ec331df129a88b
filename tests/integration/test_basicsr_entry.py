"""BasicSR's own entry points find the plugin through the installed startup hook.

``pip install`` puts ``addersr_plugin_hook.pth`` into site-packages (``setup.py``). Here each
fresh interpreter gets the same line through a ``sitecustomize`` that adds a folder holding it as
a site dir, so these tests hold before the package is (re)installed and whatever the venv has.
basicsr is run from a copy in a folder named ``site-packages`` so that a wrong output root
would land in the temporary folder, never in the real environment.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import _addersr_plugin_hook as hook
from sr_helpers import REPO, env, make_pair_lmdbs, make_test_options, train_options, write_yaml


def _hook_dirs(root) -> str:
    """A folder for PYTHONPATH whose sitecustomize adds a site dir holding the installed .pth line."""
    site_dir = root / "hook_site"
    site_dir.mkdir()
    (site_dir / hook.PTH_NAME).write_text(hook.PTH_LINE + "\n")
    custom = root / "hook_custom"
    custom.mkdir()
    (custom / "sitecustomize.py").write_text(f"import site\nsite.addsitedir({str(site_dir)!r})\n")
    return str(custom)


def _env(*front: str, warnings: str = "ignore", **extra) -> dict:
    e = env()
    e["PYTHONPATH"] = os.pathsep.join([*front, e["PYTHONPATH"]])
    e["PYTHONWARNINGS"] = warnings
    e.pop(hook.ENV_OFF, None)
    e.update(extra)
    return e


def _run(code: str, e: dict, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=e, cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def hooked(tmp_path_factory):
    return _hook_dirs(tmp_path_factory.mktemp("hook"))


_STATE = textwrap.dedent("""
    import json, sys
    print(json.dumps({
        "heavy": sorted(m for m in ("torch", "torchvision", "basicsr", "addersr_plugin", "numpy") if m in sys.modules),
        # before the standard path finder (setuptools' distutils-precedence.pth may put its own
        # finder, which only answers for distutils, in front of ours)
        "hook_first": [n for n in (f.__name__ if isinstance(f, type) else type(f).__name__ for f in sys.meta_path)
                       if n in ("BasicsrFinder", "PathFinder")][0],
        "hooks": sum(getattr(f, "addersr_basicsr_hook", False) for f in sys.meta_path),
    }))
""")


def test_interpreter_start_installs_only_the_finder(hooked, tmp_path):
    import json

    proc = _run(_STATE, _env(hooked), tmp_path)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    # `import json` at start-up: the hook is in place and nothing heavy was imported.
    assert state == {"heavy": [], "hook_first": "BasicsrFinder", "hooks": 1}
    # Two copies of the .pth line (installed package + this test's site dir) install it once.
    twice = _hook_dirs(tmp_path)
    proc = _run(_STATE, _env(hooked, twice), tmp_path)
    assert json.loads(proc.stdout)["hooks"] == 1


def test_environment_variable_turns_the_hook_off(hooked, tmp_path):
    import json

    proc = _run(_STATE, _env(hooked, **{hook.ENV_OFF: "1"}), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hooks"] == 0


def test_import_basicsr_applies_the_fixes_and_registers_the_archs(hooked, tmp_path):
    code = textwrap.dedent("""
        import sys
        assert "addersr_plugin" not in sys.modules
        import basicsr  # nothing of the plugin imported explicitly
        from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
        import basicsr.train, basicsr.utils.options
        print(sorted(n for n in ("AdderEDSR", "AdderVDSR", "VDSR") if n in ARCH_REGISTRY._obj_map),
              "AdderSRModel" in MODEL_REGISTRY._obj_map)
        print(getattr(basicsr.train.load_resume_state, "__addersr_compat__", False),
              getattr(basicsr.utils.options.parse_options, "__addersr_compat__", False))
        print(type(basicsr.__loader__).__name__ == type(basicsr.__spec__.loader).__name__ == "SourceFileLoader")
    """)
    proc = _run(code, _env(hooked, warnings="error::UserWarning"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:3] == ["['AdderEDSR', 'AdderVDSR', 'VDSR'] True", "True True", "True"]


def test_importing_the_plugin_first_still_works_with_the_hook(hooked, tmp_path):
    """``import addersr_plugin`` imports basicsr from inside its own initialisation; the hook then
    finds the plugin half-initialised and leaves the rest to it (no warning, one registration)."""
    code = ("import addersr_plugin, basicsr\nfrom basicsr.utils.registry import ARCH_REGISTRY\n"
            "print(ARCH_REGISTRY.get('AdderEDSR') is addersr_plugin.archs.AdderEDSR)")
    proc = _run(code, _env(hooked, warnings="error::UserWarning"), tmp_path)
    assert proc.returncode == 0 and proc.stdout == "True\n", proc.stderr[-3000:]


def test_a_failing_plugin_warns_and_basicsr_still_imports(hooked, tmp_path):
    broken = tmp_path / "broken"
    (broken / "addersr_plugin" / "integration").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "addersr_plugin", "integration", "preimport.py"),
                broken / "addersr_plugin" / "integration" / "preimport.py")
    (broken / "addersr_plugin" / "__init__.py").write_text("raise RuntimeError('boom')\n")
    proc = _run("import basicsr; print('basicsr', basicsr.__version__)", _env(hooked, str(broken), warnings="default"),
                tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("basicsr 1.4.2")
    assert "AdderSRHookWarning: addersr-plugin: could not register its architectures with basicsr " \
           "(RuntimeError: boom); set ADDERSR_NO_BASICSR_HOOK=1 to turn the hook off" in proc.stderr


def test_a_broken_hook_module_only_warns_at_start(hooked, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "_addersr_plugin_hook.py").write_text("raise ImportError('damaged install')\n")
    proc = _run("import json; print('started')", _env(hooked, str(shadow), warnings="default"), tmp_path)
    assert proc.returncode == 0 and proc.stdout == "started\n", proc.stderr
    assert "addersr-plugin: startup hook not installed: ImportError('damaged install')" in proc.stderr


def test_setup_writes_the_startup_file_into_the_build(tmp_path):
    lib = tmp_path / "lib"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)], cwd=REPO,
                          env=dict(env(), ADDERSR_CPU_ONLY="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (lib / hook.PTH_NAME).read_text() == hook.PTH_LINE + "\n"
    assert (lib / "_addersr_plugin_hook.py").is_file() and (lib / "addersr_plugin" / "integration" / "preimport.py").is_file()


# ---------------------------------------------------------------------------- basicsr's own entry


@pytest.fixture(scope="module")
def installed_basicsr(tmp_path_factory):
    """A copy of the installed basicsr in a folder named site-packages (first on PYTHONPATH)."""
    import importlib.util

    origin = importlib.util.find_spec("basicsr").origin  # located, not imported
    site = tmp_path_factory.mktemp("venv") / "site-packages"
    shutil.copytree(os.path.dirname(origin), site / "basicsr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(site / "basicsr" / "version.py", "a") as f:  # basicsr logs its version: proof it ran from here
        f.write("__version__ += '+sitecopy'\n")
    return site


@pytest.mark.slow
def test_python_m_basicsr_train_and_test_from_site_packages(hooked, installed_basicsr, tmp_path):
    gt, lq = make_pair_lmdbs(str(tmp_path / "data"))
    opt = train_options(gt, lq, name="entry")
    opt_file = write_yaml(str(tmp_path / "entry.yml"), opt)
    work = tmp_path / "work"
    work.mkdir()
    e = _env(hooked, str(installed_basicsr))
    proc = subprocess.run([sys.executable, "-m", "basicsr.train", "-opt", opt_file], cwd=str(work), env=e,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "BasicSR: 1.4.2+sitecopy" in out and "Network: AdderEDSR" in out
    exp = work / "experiments" / "entry"  # rooted at the working directory ...
    assert (exp / "models" / "net_g_4.pth").is_file()
    assert sorted(os.listdir(exp / "training_states")) == ["2.state", "4.state"]
    assert glob.glob(str(work / "tb_logger" / "entry" / "events.out.tfevents.*"))
    # ... and nothing under the "site-packages" basicsr runs from.
    assert sorted(os.listdir(installed_basicsr)) == ["basicsr"]

    # --auto_resume through basicsr's own (__main__) train.py: the CPU-safe resume of compat.
    proc = subprocess.run([sys.executable, "-m", "basicsr.train", "-opt", opt_file, "--auto_resume",
                           "--force_yml", "train:total_iter=6"], cwd=str(work), env=e,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Resuming training from epoch: 0, iter: 4." in out
    assert (exp / "training_states" / "6.state").is_file()

    test_file = write_yaml(str(tmp_path / "test.yml"), make_test_options(opt, str(exp / "models" / "net_g_6.pth"),
                                                                         name="entry_test"))
    proc = subprocess.run([sys.executable, "-m", "basicsr.test", "-opt", test_file], cwd=str(work), env=e,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert len(glob.glob(str(work / "results" / "entry_test" / "visualization" / "tiny_val" / "*.png"))) == 2
    assert sorted(os.listdir(installed_basicsr)) == ["basicsr"]


@pytest.mark.slow
def test_basicsr_train_py_as_a_script(hooked, installed_basicsr, tmp_path):
    """``python .../site-packages/basicsr/train.py`` is rooted at the working directory; in a BasicSR
    checkout (``PYTHONPATH=. python basicsr/train.py``, as BasicSR's docs say) at the checkout."""
    gt, lq = make_pair_lmdbs(str(tmp_path / "data"))
    opt = train_options(gt, lq, name="script")
    opt["train"]["total_iter"] = 2
    opt["val"]["val_freq"] = 2
    opt_file = write_yaml(str(tmp_path / "script.yml"), opt)

    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(installed_basicsr / "basicsr" / "train.py"), "-opt", opt_file],
                          cwd=str(work), env=_env(hooked, str(installed_basicsr)), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (work / "experiments" / "script" / "models" / "net_g_2.pth").is_file()
    assert sorted(os.listdir(installed_basicsr)) == ["basicsr"]

    checkout = tmp_path / "BasicSR"
    shutil.copytree(installed_basicsr / "basicsr", checkout / "basicsr", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "basicsr/train.py", "-opt", opt_file], cwd=str(checkout),
                          env=_env(hooked, str(checkout)), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (checkout / "experiments" / "script" / "models" / "net_g_2.pth").is_file()  # BasicSR's own layout


def test_parse_options_reroots_a_site_packages_root_in_process(tmp_path, monkeypatch):
    """What ``python -m basicsr.train`` calls: ``parse_options(<basicsr's parent>)``. From
    site-packages, every output path moves under the working directory, and so does the
    ``opt['root_path'] = root_path`` that ``train_pipeline`` writes afterwards (tb_logger)."""
    import copy
    import pickle

    import addersr_plugin  # noqa: F401  (compat applied)
    import basicsr
    from basicsr.utils import options

    site = os.path.dirname(os.path.dirname(os.path.abspath(basicsr.__file__)))
    if os.path.basename(site) not in ("site-packages", "dist-packages"):
        pytest.skip(f"basicsr is not installed in site-packages here ({site})")
    opt_file = write_yaml(str(tmp_path / "o.yml"), train_options("gt", "lq", name="rooted"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", opt_file])
    opt, _ = options.parse_options(site, is_train=True)
    opt["root_path"] = site  # what basicsr's train_pipeline does next
    assert opt["root_path"] == str(work)
    assert opt["path"]["experiments_root"] == os.path.join(str(work), "experiments", "rooted")
    assert opt["path"]["models"].startswith(str(work))
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone == opt and clone["path"] == opt["path"]
        clone["root_path"] = site
        assert clone["root_path"] == str(work)
    # Any other root (a BasicSR checkout, the console command's cwd) is left as given.
    other = tmp_path / "BasicSR"
    opt, _ = options.parse_options(str(other), is_train=False)
    assert opt["path"]["results_root"] == os.path.join(str(other), "results", "rooted")
