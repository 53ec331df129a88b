"""``addersr data photos``: folders of photos -> train LMDBs + whole held-out photos (docs/quality.md)."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from addersr_plugin.data.errors import DatasetError
from addersr_plugin.data.lmdb_build import check_lmdb
from addersr_plugin.data.photos import choose_holdout, photo_paths, prepare_photos
from sr_helpers import cli, textured_image


def _source(root, name: str, n: int, ext: str = ".jpg", size=(240, 200), seed: int = 0) -> str:
    folder = os.path.join(str(root), name)
    os.makedirs(folder)
    for i in range(n):
        img = textured_image(size[1], size[0], seed + i)
        cv2.imwrite(os.path.join(folder, f"photo {i}.v1{ext}"), img)  # spaces and dots: keys must be cleaned
    return folder


def test_whole_photos_split_per_source_and_lmdbs(tmp_path):
    a = _source(tmp_path / "src", "cams-16.04", 4)
    b = _source(tmp_path / "src", "phone", 3, ext=".png", size=(130, 120), seed=10)
    out = str(tmp_path / "photos")
    manifest = prepare_photos([a, b], out, scales=[2, 3], reduce=2, holdout_per_source=1, crop=48, step=24)

    photos = manifest["photos"]
    assert manifest["sources"] == ["cams-16_04", "phone"]  # '.' would cut basicsr's LMDB keys
    held = [p for p in photos if p["split"] == "heldout"]
    assert sorted(p["source"] for p in held) == ["cams-16_04", "phone"]  # one whole photo of every source
    jpeg = next(p for p in photos if p["source"] == "cams-16_04")
    assert jpeg["original"] == [240, 200] and jpeg["reduce"] == 2 and jpeg["size"] == [120, 100]
    png = next(p for p in photos if p["source"] == "phone")
    assert png["reduce"] == 1 and png["size"] == [130, 120]  # lossless photos keep their size

    paths = photo_paths(out, 2)
    hr_keys = [k for k, _ in check_lmdb(paths["train_gt"])]
    lr_keys = [k for k, _ in check_lmdb(paths["train_lq"])]
    assert hr_keys == lr_keys and hr_keys
    assert all("." not in k and " " not in k for k in hr_keys)
    def in_training(photo):  # a training sub-image's key is <photo key>_s<index>
        return any(k.startswith(os.path.splitext(photo["file"])[0] + "_s") for k in hr_keys)

    # positive control: the check finds every photo that IS in training (else "never" below would
    # hold vacuously, e.g. if the key format changed)
    trained = [p for p in photos if p["split"] == "train"]
    assert trained and all(in_training(p) for p in trained)
    for p in held:  # a held-out photo is never cropped into training
        assert not in_training(p)
        hr = cv2.imread(os.path.join(paths["val_gt"], p["file"]))
        assert hr.shape[0] % 6 == 0 and hr.shape[1] % 6 == 0  # modcropped to lcm(2, 3)
        for s in (2, 3):
            lr = cv2.imread(os.path.join(out, "heldout", "LR_bicubic", f"X{s}", p["file"]))
            assert lr.shape[:2] == (hr.shape[0] // s, hr.shape[1] // s)
    assert manifest["train_sub_images"] == len(hr_keys)
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f) == manifest
    assert not os.path.exists(out + ".partial")

    with pytest.raises(DatasetError, match="already holds a finished photo dataset"):
        prepare_photos([a, b], out, reduce=2, holdout_per_source=1, crop=48, step=24)


def test_holdout_choice_is_stable_and_named_holdout(tmp_path):
    keys = [f"img{i}" for i in range(10)]
    assert choose_holdout(keys, 3) == choose_holdout(list(reversed(keys)), 3)
    a = _source(tmp_path / "src", "a", 3)
    manifest = prepare_photos([a], str(tmp_path / "out"), scales=[2], reduce=2, holdout=["photo_1_v1"],
                              crop=48, step=24)
    assert [p["photo"] for p in manifest["photos"] if p["split"] == "heldout"] == ["photo_1_v1"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(holdout_per_source=3), "cannot hold out 3 of 3 photos: nothing would be left to train on"),
    (dict(holdout=["nope"]), "--holdout names no photo of the sources: nope"),
    (dict(reduce=0), "--reduce must be a positive integer, got 0"),
    # 240x200 JPEGs: /4 is 60x50, below one 96-pixel crop; /2 (100 px) would hold one
    (dict(reduce=4, crop=96), "60x50 after reduction x4 is smaller than --crop 96 (every photo must hold one "
                              "--crop sub-image); use --reduce 2 or a smaller --crop"),
    (dict(reduce=1, crop=240), "240x200 is smaller than --crop 240 (every photo must hold one --crop "
                               "sub-image); use a smaller --crop (at most 200) or leave the photo out"),
    (dict(step=0), "--step must be a positive integer, got 0"),
    (dict(scales=[1]), "scales must be integers >= 2, got [1]"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    a = _source(tmp_path / "src", "a", 3)
    args = dict(scales=[2], reduce=2, holdout_per_source=1, crop=48, step=24)
    args.update(kwargs)
    out = str(tmp_path / "out")
    with pytest.raises(DatasetError) as err:
        prepare_photos([a], out, **args)
    assert message in str(err.value)
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")  # nothing half-written left


def test_skimage_source_lists_its_photos():
    from addersr_plugin.data.photos import SKIMAGE_PHOTOS, _load_skimage, list_photos

    assert [k for k, _, lossy in list_photos("skimage") if not lossy] == list(SKIMAGE_PHOTOS)
    img = _load_skimage("coffee")
    assert img.shape == (400, 600, 3) and img.dtype == np.uint8


def test_missing_source_folder(tmp_path, capsys):
    from addersr_plugin.cli import addersr_main

    with pytest.raises(DatasetError, match="photo source is not a folder: .*nowhere"):
        prepare_photos([str(tmp_path / "nowhere")], str(tmp_path / "out"))
    assert addersr_main(["data", "photos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "addersr data photos: error: photo source is not a folder" in capsys.readouterr().err


def test_command_line(tmp_path):
    a = _source(tmp_path / "src", "a", 3)
    proc = cli(["data", "photos", a, "--out", str(tmp_path / "ds"), "--scales", "2", "--reduce", "2",
                "--holdout-per-source", "1", "--crop", "96", "--step", "96"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 training photos -> " in proc.stdout and "held out (validation): a_photo_" in proc.stdout

    assert np.all([os.path.isfile(os.path.join(tmp_path, "ds", "heldout", "HR", f))
                   for f in os.listdir(os.path.join(tmp_path, "ds", "heldout", "HR"))])


def test_test_split_whole_collections_and_named_photos(tmp_path):
    """--test-source: a whole collection only in test/; --test: single photos; never in training, and
    validation (heldout/) never holds a test photo."""
    a = _source(tmp_path / "src", "a", 4)
    t = _source(tmp_path / "src", "other", 2, seed=20)
    out = str(tmp_path / "ds")
    manifest = prepare_photos([a], out, scales=[2, 4], reduce=2, holdout=["photo_0_v1"], test=["a_photo_3_v1"],
                              test_sources=[t], crop=48, step=24)
    split = {p["file"]: p["split"] for p in manifest["photos"]}
    assert split == {"a_photo_0_v1.png": "heldout", "a_photo_1_v1.png": "train", "a_photo_2_v1.png": "train",
                     "a_photo_3_v1.png": "test", "other_photo_0_v1.png": "test", "other_photo_1_v1.png": "test"}
    assert manifest["test_sources"] == ["other"]
    paths = photo_paths(out, 4)
    assert sorted(os.listdir(paths["test_gt"])) == sorted(f for f, s in split.items() if s == "test")
    assert sorted(os.listdir(paths["val_gt"])) == ["a_photo_0_v1.png"]
    for f in os.listdir(paths["test_gt"]):
        hr, lr = cv2.imread(os.path.join(paths["test_gt"], f)), cv2.imread(os.path.join(paths["test_lq"], f))
        assert lr.shape[:2] == (hr.shape[0] // 4, hr.shape[1] // 4)
    keys = [k for k, _ in check_lmdb(paths["train_gt"])]
    assert {k.rsplit("_s", 1)[0] for k in keys} == {"a_photo_1_v1", "a_photo_2_v1"}


def test_test_split_errors(tmp_path):
    a = _source(tmp_path / "src", "a", 3)
    t = _source(tmp_path / "src", "t", 1)
    out = str(tmp_path / "ds")
    with pytest.raises(DatasetError, match="a source is either for training or a --test-source, not both"):
        prepare_photos([a], out, test_sources=[a], reduce=2, crop=48, step=24)
    with pytest.raises(DatasetError, match="photo_0_v1: named in both --holdout and --test"):
        prepare_photos([a], out, holdout=["photo_0_v1"], test=["photo_0_v1"], reduce=2, crop=48, step=24)
    with pytest.raises(DatasetError, match="--test names no photo of the sources: nope"):
        prepare_photos([a], out, test=["nope"], test_sources=[t], reduce=2, crop=48, step=24)
    with pytest.raises(DatasetError, match="every photo of a is held out or tested"):
        prepare_photos([a], out, holdout=["photo_0_v1"], test=["photo_1_v1", "photo_2_v1"], reduce=2, crop=48,
                       step=24)
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


def test_matplotlib_source_is_its_one_photo():
    from addersr_plugin.data.photos import list_photos

    assert list_photos("matplotlib") == [("grace_hopper", "grace_hopper", True)]
