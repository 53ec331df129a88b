"""``addersr quantize`` on the user's path: bad calibration files are skipped and named (and
OpenCV's own stderr lines do not leak), progress bars, the per-layer clamped fraction and its
warning, an int8 or truncated checkpoint given as --model, and both spellings of --opt."""

from __future__ import annotations

import re
import shutil

import pytest

from addersr_plugin.cli.addersr_cmd import addersr_main
from addersr_plugin.cli.quantize import CLAMP_WARN, build_parser
from addersr_plugin.quant import load_int8
from test_quant import cli_setup, trained  # noqa: F401  (the fixtures: trained feeds cli_setup)

LAYERS = ["body.0.unit1.adder", "body.0.unit2.adder", "body.1.unit1.adder", "body.1.unit2.adder",
          "conv_after_body.adder"]


def _quantize(root, calib, out, *extra, opt_flag="-opt", model=None):
    return addersr_main(["quantize", opt_flag, str(root / "opt.yml"), "--model", str(model or root / "net.pth"),
                         "--calib", str(calib), "--out", str(out), "--crop", "32", *extra])


def _bad_files(folder):
    """A truncated PNG (libpng prints "libpng error: ..." straight to stderr while decoding it), a
    file that is no image at all and a truncated JPEG: names sort before the good ones."""
    png = (folder / "c0.png").read_bytes()
    (folder / "a_truncated.png").write_bytes(png[:-10])
    (folder / "b_garbage.png").write_bytes(b"this is not an image")
    import cv2
    import numpy as np

    ok, jpg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    (folder / "b_truncated.jpg").write_bytes(jpg.tobytes()[: len(jpg) * 2 // 3])
    return ["a_truncated.png", "b_garbage.png", "b_truncated.jpg"]


def _lines(err):
    return [ln for ln in re.split(r"[\r\n]", err) if ln.strip()]


def test_bad_calibration_files_are_skipped_named_and_counted(cli_setup, tmp_path, capfd):  # noqa: F811
    calib = tmp_path / "calib"
    shutil.copytree(cli_setup / "calib", calib)
    bad = _bad_files(calib)
    out = tmp_path / "q.pth"
    rc = _quantize(cli_setup, calib, out, "--method", "minmax", "--calib-images", "2")
    printed = capfd.readouterr()  # fd-level: what C libraries print is in here too
    assert rc == 0, printed.err
    for name in bad:
        assert f"addersr quantize: warning: skipped calibration image {name}: " in printed.err
    # nothing but our warnings and the progress bars: no raw OpenCV/libpng/libjpeg line
    stray = [ln for ln in _lines(printed.err) if not ln.startswith("addersr quantize: warning: ")
             and not re.match(r"\s*(calibrating|trying \w+|choosing \w+ grids):", ln)]
    assert stray == [], stray
    assert "PSNR vs float on 2 calibration images (3 unreadable skipped)" in printed.out
    _, _, report = load_int8(str(out))
    assert report["calibration_images"] == ["c0.png", "c1.png"] and report["skipped_images"] == bad


def test_no_usable_calibration_image_is_an_error(cli_setup, tmp_path, capfd):  # noqa: F811
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(cli_setup / "calib" / "c0.png", calib / "c0.png")
    _bad_files(calib)
    (calib / "c0.png").unlink()
    rc = _quantize(cli_setup, calib, tmp_path / "q.pth")
    err = capfd.readouterr().err
    assert rc == 2
    assert re.search(r"addersr quantize: error: no usable calibration image in .*calib: all 3 image files are "
                     r"unreadable \(a_truncated.png: ", err), err
    assert not (tmp_path / "q.pth").exists()


def test_progress_bars_clamp_report_and_warning(cli_setup, tmp_path, capfd):  # noqa: F811
    """--percentile 90 clamps a fifth of every layer's inputs: each layer is listed with its
    fraction and warned about; minmax clamps nothing and warns about nothing."""
    rc = _quantize(cli_setup, cli_setup / "calib", tmp_path / "p.pth", "--method", "percentile", "--percentile",
                   "90", opt_flag="--opt")
    printed = capfd.readouterr()
    assert rc == 0, printed.err
    assert "calibrating:" in printed.err and "trying percentile:" in printed.err  # the tqdm bars
    assert "choosing percentile grids:" in printed.err
    _, _, report = load_int8(str(tmp_path / "p.pth"))
    assert sorted(report["clamped"]) == LAYERS
    for name in LAYERS:
        frac = report["clamped"][name]
        assert 0.05 < frac < 0.35, (name, frac)
        assert re.search(rf"^  {re.escape(name)} +{100 * frac:8.4f} %$", printed.out, re.M), printed.out
        assert (f"addersr quantize: warning: layer {name} clamps {100 * frac:.3f} % of its calibration inputs "
                f"(more than {100 * CLAMP_WARN:g} %)") in printed.err
    rc = _quantize(cli_setup, cli_setup / "calib", tmp_path / "m.pth", "--method", "minmax")
    printed = capfd.readouterr()
    assert rc == 0 and "clamps" not in printed.err
    assert load_int8(str(tmp_path / "m.pth"))[2]["clamped"] == {name: 0.0 for name in LAYERS}


def test_an_int8_checkpoint_as_model_is_named(cli_setup, tmp_path, capfd):  # noqa: F811
    q = tmp_path / "q.pth"
    assert _quantize(cli_setup, cli_setup / "calib", q, "--method", "minmax") == 0
    capfd.readouterr()
    rc = _quantize(cli_setup, cli_setup / "calib", tmp_path / "again.pth", model=q)
    err = capfd.readouterr().err
    assert rc == 2
    assert (f"addersr quantize: error: {q} is already an int8 checkpoint (made by `addersr quantize`); quantize "
            f"the float checkpoint it was made from ({cli_setup / 'net.pth'}) instead") in err
    assert "no AdderConv2d" not in err


@pytest.mark.parametrize("keep", [100, 0.5], ids=["first-100-bytes", "half"])
def test_a_truncated_checkpoint_is_named(cli_setup, tmp_path, capfd, keep):  # noqa: F811
    """Cut to 100 bytes, torch.load said "[Errno 22] Invalid argument"; cut in half, a miniz
    internal error: both are reported as a truncated file."""
    q = tmp_path / "q.pth"
    assert _quantize(cli_setup, cli_setup / "calib", q, "--method", "minmax") == 0
    capfd.readouterr()
    data = q.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    rc = _quantize(cli_setup, cli_setup / "calib", tmp_path / "again.pth", model=cut)
    err = capfd.readouterr().err
    assert rc == 2
    assert re.search(r"addersr quantize: error: cannot read model file .*cut.pth: the file is truncated \(\d+ bytes\): "
                     r"it starts as a torch.save zip archive but its closing directory is missing", err), err
    assert "Errno" not in err and "miniz" not in err


def test_a_decoder_complaint_makes_an_image_unusable(monkeypatch, capfd):
    """An image that decodes while its decoder complains on the process's stderr (OpenCV's imread
    turns a truncated JPEG into a partly grey picture and libjpeg says "Premature end of JPEG
    file") is not used, and the complaint becomes the reason instead of leaking."""
    import os

    import numpy as np

    from addersr_plugin.quant import images

    def grey_with_complaint(path):
        os.write(2, b"Premature end of JPEG file\n")  # what libjpeg does: fd 2, past Python
        return np.full((8, 8, 3), 128, np.uint8)

    monkeypatch.setattr(images, "read_image", grey_with_complaint)
    img, why = images.read_image_quietly("x.jpg")
    assert img is None and why == "damaged: the decoder complained (Premature end of JPEG file)"
    monkeypatch.setattr(images, "read_image", lambda path: np.zeros((8, 8, 3), np.uint8))
    img, why = images.read_image_quietly("y.png")
    assert img.shape == (8, 8, 3) and why is None
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("flag", ["-opt", "--opt"])
def test_both_spellings_of_opt(flag):
    args = build_parser().parse_args([flag, "o.yml", "--model", "m.pth", "--calib", "c", "--out", "q.pth"])
    assert args.opt == "o.yml"
