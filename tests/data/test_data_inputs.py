"""Data tools on awkward input: a message naming the file for every bad one, a word for everything
dropped, nothing left behind by a failed run, progress bars only on a terminal."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest

import addersr_plugin  # noqa: F401
from addersr_plugin.cli import addersr_main
from addersr_plugin.data import DatasetError
from addersr_plugin.data.benchmark import prepare_benchmark
from addersr_plugin.data.div2k import prepare_div2k
from addersr_plugin.data.images import unique_keys
from addersr_plugin.data.photos import list_photos
from sr_helpers import textured_image


def _folder(root, images: dict) -> str:
    os.makedirs(root, exist_ok=True)
    for name, img in images.items():
        cv2.imwrite(os.path.join(str(root), name), img)
    return str(root)


def test_benchmark_image_too_small_names_the_file_and_the_minimum(tmp_path, capsys):
    hr = _folder(tmp_path / "hr", {"big.png": textured_image(24, 24, 0), "tiny.png": textured_image(3, 3, 1)})
    out = tmp_path / "bench"
    code = addersr_main(["data", "benchmark", "--hr", hr, "--name", "Set5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert (f"addersr data benchmark: error: {os.path.join(hr, 'tiny.png')} is 3x3: too small for x4; a benchmark "
            "image needs at least 8 pixels on each side") in err
    assert not out.exists()  # the failed run leaves no output folder


def test_div2k_bad_crop_and_step(tmp_path, capsys):
    hr = _folder(tmp_path / "hr", {"a.png": textured_image(96, 96, 0)})
    for flag, value in (("--step", "0"), ("--crop", "-48"), ("--workers", "0")):
        assert addersr_main(["data", "div2k", "--hr", hr, "--out", str(tmp_path / "d"), "--scales", "2",
                             "--crop", "48", "--step", "24", flag, value]) == 2
        assert f"{flag} must be a positive integer, got {value}" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_div2k_says_which_images_are_too_small_for_a_crop(tmp_path, capsys):
    hr = _folder(tmp_path / "hr", {"big.png": textured_image(96, 96, 0), "small.png": textured_image(30, 30, 1)})
    paths = prepare_div2k(hr, str(tmp_path / "d"), scales=[2], crop=48, step=48)
    err = capsys.readouterr().err
    assert "warning: 1 image(s) smaller than --crop 48 gave no sub-image and were left out: small.png (30x30)" in err
    assert os.path.isdir(paths["X2"])


def test_a_failed_div2k_run_leaves_no_output_folder(tmp_path):
    hr = _folder(tmp_path / "hr", {"0001.png": textured_image(96, 96, 0)})
    lr_root = tmp_path / "lr"
    (lr_root / "X2").mkdir(parents=True)  # the LR image is missing
    out = tmp_path / "new" / "DIV2K"
    with pytest.raises(DatasetError, match="LR image missing for scale 2"):
        prepare_div2k(hr, str(out), scales=[2], lr_root=str(lr_root), crop=48, step=48)
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("x")  # a folder that was there stays, with its files
    with pytest.raises(DatasetError):
        prepare_div2k(hr, str(tmp_path / "kept"), scales=[2], lr_root=str(lr_root), crop=48, step=48)
    assert os.listdir(tmp_path / "kept") == ["mine.txt"]


def test_benchmark_says_it_drops_alpha(tmp_path, capsys):
    rgba = np.dstack([textured_image(24, 24, 0), np.full((24, 24), 128, np.uint8)])
    hr = _folder(tmp_path / "hr", {"logo.png": rgba, "photo.png": textured_image(24, 24, 1)})
    target = prepare_benchmark(hr, str(tmp_path / "b"), "Set5", [2])
    assert "note: 1 image(s) had an alpha channel, which the benchmark set leaves out (HR and LR are RGB): " \
           "logo.png" in capsys.readouterr().err
    assert cv2.imread(os.path.join(target, "HR", "logo.png"), cv2.IMREAD_UNCHANGED).shape == (24, 24, 3)


def test_read_image_alpha(tmp_path):
    from addersr_plugin.data.images import read_image_alpha

    rgba = np.dstack([textured_image(6, 5, 0), np.arange(30, dtype=np.uint8).reshape(6, 5)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    img, alpha = read_image_alpha(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(img, rgba[:, :, :3])
    np.testing.assert_array_equal(alpha, rgba[:, :, 3])
    with pytest.raises(DatasetError, match="cannot read image \\(missing\\)"):
        read_image_alpha(str(tmp_path / "none.png"))


def test_two_files_with_one_stem_are_both_named(tmp_path):
    with pytest.raises(DatasetError, match="two images share the name stem 'a': a.jpg and a.png; rename one"):
        unique_keys(["a.jpg", "a.png", "b.png"])
    src = _folder(tmp_path / "src", {"x 1.png": textured_image(8, 8, 0), "x_1.png": textured_image(8, 8, 1)})
    with pytest.raises(DatasetError, match="share the key 'x_1': x 1.png and x_1.png; rename one"):
        list_photos(src)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    hr = _folder(tmp_path / "hr", {f"{i}.png": textured_image(24, 24, i) for i in range(3)})
    prepare_benchmark(hr, str(tmp_path / "quiet"), "Set5", [2])
    err = capsys.readouterr().err
    assert "image/s" not in err and "100%" not in err  # not a terminal: no bar in logs and pipes
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    prepare_benchmark(hr, str(tmp_path / "tty"), "Set5", [2])
    assert "Set5: 100%" in terminal.getvalue() and "3/3" in terminal.getvalue()
