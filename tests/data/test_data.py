"""Data tools: LMDB building/checking, DIV2K sub-images, benchmark sets, the photo demo set."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import addersr_plugin  # noqa: F401
from addersr_plugin.data import DatasetError
from addersr_plugin.data.benchmark import prepare_benchmark
from addersr_plugin.data.div2k import prepare_div2k
from addersr_plugin.data.images import bicubic_downscale, crop_positions, modcrop, scan_images
from addersr_plugin.data.lmdb_build import build_lmdb, check_lmdb, read_meta_info
from sr_helpers import textured_image, write_pairs


def _lmdb_image(path: str, key: str) -> np.ndarray:
    import lmdb

    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        img = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_UNCHANGED)
    env.close()
    return img


def test_crop_positions_cover_the_border_and_stay_aligned():
    assert crop_positions(1356, 480, 240, 12) == [0, 240, 480, 720, 876]  # flush with the border
    assert crop_positions(1363, 480, 240, 12) == [0, 240, 480, 720, 876]  # 883 rounded down to 12k
    assert crop_positions(960, 480, 240, 12) == [0, 240, 480]  # grid already flush
    assert crop_positions(100, 480, 240) == []  # too small for one crop
    for pos in crop_positions(1357, 480, 240, 12):
        assert pos % 12 == 0 and pos + 480 <= 1357


def test_modcrop_and_matlab_bicubic():
    img = textured_image(37, 41, 1)
    assert modcrop(img, 4).shape == (36, 40, 3)
    lr = bicubic_downscale(modcrop(img, 4), 4)
    assert lr.shape == (9, 10, 3) and lr.dtype == np.uint8
    flat = np.full((8, 8, 3), 77, np.uint8)
    assert (bicubic_downscale(flat, 2) == 77).all()  # bicubic kernel sums to 1
    with pytest.raises(DatasetError, match="not a multiple of scale 4; modcrop it first"):
        bicubic_downscale(img, 4)


def test_scan_images_of_an_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="no images found in .*looked for .png"):
        scan_images(str(tmp_path))
    with pytest.raises(DatasetError, match="image folder does not exist"):
        scan_images(str(tmp_path / "missing"))


def test_build_lmdb_round_trip_and_refuses_to_overwrite(tmp_path):
    gt_dir, _ = write_pairs(str(tmp_path / "png"), n=3, gt=24)
    path = str(tmp_path / "gt.lmdb")
    assert build_lmdb(gt_dir, path) == 3
    meta = check_lmdb(path)
    assert meta == [(f"img{i:02d}", (24, 24, 3)) for i in range(3)]
    original = cv2.imread(os.path.join(gt_dir, "img01.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(_lmdb_image(path, "img01"), original)
    with open(os.path.join(path, "meta_info.txt")) as f:
        assert f.readline() == "img00.png (24,24,3) 1\n"  # BasicSR's format
    with pytest.raises(DatasetError, match="refusing to overwrite existing LMDB .*gt.lmdb"):
        build_lmdb(gt_dir, path)
    with pytest.raises(DatasetError, match="must end with '.lmdb'"):
        build_lmdb(gt_dir, str(tmp_path / "gt_db"))


def test_interrupted_build_leaves_no_lmdb(tmp_path):
    gt_dir, _ = write_pairs(str(tmp_path / "png"), n=3, gt=24)
    with open(os.path.join(gt_dir, "img01.png"), "wb") as f:
        f.write(b"\x89PNG truncated")  # the writer dies on the second image
    path = tmp_path / "gt.lmdb"
    with pytest.raises(DatasetError, match="building .*gt.lmdb failed .*nothing was written there"):
        build_lmdb(gt_dir, str(path))
    assert not path.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".lmdb")]  # no partial either


def test_check_lmdb_names_the_problem(tmp_path):
    gt_dir, _ = write_pairs(str(tmp_path / "png"), n=2, gt=24)
    path = str(tmp_path / "x.lmdb")
    build_lmdb(gt_dir, path)
    meta_file = os.path.join(path, "meta_info.txt")
    os.rename(meta_file, meta_file + ".bak")
    with pytest.raises(DatasetError, match="x.lmdb has no meta_info.txt"):
        check_lmdb(path)
    os.rename(meta_file + ".bak", meta_file)
    with open(os.path.join(path, "data.mdb"), "wb") as f:
        f.write(os.urandom(8192))
    with pytest.raises(DatasetError, match="x.lmdb is corrupt or unreadable"):
        check_lmdb(path)
    with pytest.raises(DatasetError, match="LMDB does not exist"):
        check_lmdb(str(tmp_path / "none.lmdb"))


def test_meta_info_with_more_entries_than_the_database(tmp_path):
    gt_dir, _ = write_pairs(str(tmp_path / "png"), n=2, gt=24)
    path = str(tmp_path / "x.lmdb")
    build_lmdb(gt_dir, path)
    with open(os.path.join(path, "meta_info.txt"), "a") as f:
        f.write("img99.png (24,24,3) 1\n")
    with pytest.raises(DatasetError, match="incomplete or corrupt: 2 entries, meta_info.txt lists 3"):
        check_lmdb(path)
    with open(os.path.join(path, "meta_info.txt"), "a") as f:
        f.write("garbage\n")
    with pytest.raises(DatasetError, match="meta_info.txt:4: malformed line"):
        read_meta_info(path)


def test_benchmark_set_layout_and_sizes(tmp_path):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    cv2.imwrite(str(hr_dir / "bird.png"), textured_image(37, 50, 0))
    cv2.imwrite(str(hr_dir / "face.jpg"), textured_image(24, 30, 1))
    out = prepare_benchmark(str(hr_dir), str(tmp_path / "benchmark"), "Set5", [2, 3])
    assert sorted(os.listdir(os.path.join(out, "HR"))) == ["bird.png", "face.png"]
    bird = cv2.imread(os.path.join(out, "HR", "bird.png"))
    assert bird.shape == (37, 50, 3)  # HR unchanged; each scale uses its own modcrop
    lr3 = cv2.imread(os.path.join(out, "LR_bicubic", "X3", "bird.png"))
    assert lr3.shape == (12, 16, 3)
    np.testing.assert_array_equal(lr3, bicubic_downscale(modcrop(bird, 3), 3))
    assert cv2.imread(os.path.join(out, "LR_bicubic", "X2", "face.png")).shape == (12, 15, 3)
    assert not os.path.exists(os.path.join(str(tmp_path / "benchmark"), ".Set5.partial"))
    with pytest.raises(DatasetError, match="refusing to overwrite existing .*Set5"):
        prepare_benchmark(str(hr_dir), str(tmp_path / "benchmark"), "Set5", [2])


def test_benchmark_from_an_empty_folder(tmp_path):
    (tmp_path / "hr").mkdir()
    with pytest.raises(DatasetError, match="no images found in .*hr"):
        prepare_benchmark(str(tmp_path / "hr"), str(tmp_path / "out"), "Set14")
    assert not (tmp_path / "out" / "Set14").exists()


def test_div2k_sub_images_match_across_scales(tmp_path):
    hr_dir = tmp_path / "DIV2K_train_HR"
    hr_dir.mkdir()
    for i, (h, w) in enumerate([(96, 132), (72, 84)], 1):
        cv2.imwrite(str(hr_dir / f"{i:04d}.png"), textured_image(h, w, i))
    out = tmp_path / "DIV2K"
    paths = prepare_div2k(str(hr_dir), str(out), scales=[2, 3, 4], crop=48, step=24)
    assert os.path.basename(paths["HR"]) == "DIV2K_train_HR_sub.lmdb"
    assert os.path.basename(paths["X3"]) == "DIV2K_train_LR_bicubic_X3_sub.lmdb"
    hr_meta = check_lmdb(paths["HR"])
    # 96x132: rows [0,24,48], cols [0,24,48,72,84] -> 15; 72x84: rows [0,24], cols [0,24,36] -> 6
    assert len(hr_meta) == 21 and hr_meta[0] == ("0001_s001", (48, 48, 3))
    for s in (2, 3, 4):
        lr_meta = check_lmdb(paths[f"X{s}"])
        assert [k for k, _ in lr_meta] == [k for k, _ in hr_meta]
        assert lr_meta[0][1] == (48 // s, 48 // s, 3)
    # The last column crop of image 1 (left 84) is exactly the LR region 84/s of the LR image.
    full = cv2.imread(str(hr_dir / "0001.png"))
    for s in (2, 3, 4):
        lr = bicubic_downscale(modcrop(full, s), s)
        np.testing.assert_array_equal(_lmdb_image(paths[f"X{s}"], "0001_s005"), lr[0:48 // s, 84 // s:132 // s])
    np.testing.assert_array_equal(_lmdb_image(paths["HR"], "0001_s005"), full[0:48, 84:132])
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in paths.values())  # no leftovers

    with pytest.raises(DatasetError, match="refusing to overwrite existing LMDB"):
        prepare_div2k(str(hr_dir), str(out), scales=[2], crop=48, step=24)


def test_div2k_with_given_lr_checks_pairs(tmp_path):
    hr_dir, lr_root = tmp_path / "HR", tmp_path / "LR"
    (lr_root / "X2").mkdir(parents=True)
    hr_dir.mkdir()
    hr = textured_image(48, 48, 0)
    cv2.imwrite(str(hr_dir / "0001.png"), hr)
    cv2.imwrite(str(lr_root / "X2" / "0001x2.png"), hr[:16, :16])  # a x3-sized image in X2/
    with pytest.raises(DatasetError, match="0001x2.png is 16x16 but HR 0001.png is 48x48: not a ×2 pair"):
        prepare_div2k(str(hr_dir), str(tmp_path / "out"), scales=[2], lr_root=str(lr_root), crop=48, step=24)
    assert not (tmp_path / "out").exists()  # no LMDB, and not the empty folder either
    with pytest.raises(DatasetError, match="LR image missing for scale 3"):
        prepare_div2k(str(hr_dir), str(tmp_path / "out"), scales=[3], lr_root=str(lr_root), crop=48, step=24)
    with pytest.raises(DatasetError, match="crop 50 and step 24 must be multiples of scale 4"):
        prepare_div2k(str(hr_dir), str(tmp_path / "out"), scales=[4], crop=50, step=24)


def test_demo_set_from_skimage_photos(tmp_path, monkeypatch):
    from addersr_plugin.data import demo_set

    for name in demo_set.TRAIN_PHOTOS + demo_set.VAL_PHOTOS:  # all ship with scikit-image
        photo = demo_set.load_photo(name)
        assert photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 256
    monkeypatch.setattr(demo_set, "TRAIN_PHOTOS", ("astronaut",))
    monkeypatch.setattr(demo_set, "VAL_PHOTOS", ("chelsea",))
    paths = demo_set.prepare_demo_set(str(tmp_path), scale=2, crop=120, step=120)
    train = check_lmdb(paths["train_gt"])
    assert len(train) == 25 and train[0][1] == (120, 120, 3)  # 5x5 grid, last crops flush (512 px)
    assert check_lmdb(paths["train_lq"])[0][1] == (60, 60, 3)
    assert check_lmdb(paths["val_gt"]) == [("chelsea", (300, 450, 3))]
    assert check_lmdb(paths["val_lq"]) == [("chelsea", (150, 225, 3))]
    with pytest.raises(DatasetError, match="refusing to overwrite existing LMDB"):
        demo_set.prepare_demo_set(str(tmp_path))
    with pytest.raises(DatasetError, match="unknown demo photo 'lena'"):
        demo_set.load_photo("lena")


def test_demo_set_drops_flat_crops(tmp_path, monkeypatch):
    from addersr_plugin.data import demo_set

    photo = textured_image(240, 240, 3)
    photo[:, :120] = 20  # left half: black sky
    monkeypatch.setattr(demo_set, "load_photo", lambda name: photo)
    monkeypatch.setattr(demo_set, "TRAIN_PHOTOS", ("sky",))
    monkeypatch.setattr(demo_set, "VAL_PHOTOS", ("val",))
    paths = demo_set.prepare_demo_set(str(tmp_path), scale=2, crop=120, step=120)
    assert [k for k, _ in check_lmdb(paths["train_gt"])] == ["sky_s002", "sky_s004"]


def _tmpl_layout(root, lq_suffix: str):
    """GT ``0001.png``, ``0002.png`` (24x24) and LQ ``0001<suffix>.png`` ... (12x12), x2."""
    gt_dir, lq_dir = root / "gt", root / "lq"
    gt_dir.mkdir()
    lq_dir.mkdir()
    for i in (1, 2):
        hr = textured_image(24, 24, i)
        cv2.imwrite(str(gt_dir / f"{i:04d}.png"), hr)
        cv2.imwrite(str(lq_dir / f"{i:04d}{lq_suffix}.png"), bicubic_downscale(hr, 2))
    return str(gt_dir), str(lq_dir)


def _paired_opt(gt_dir, lq_dir, **ds):
    return {"scale": 2, "datasets": {"val": {
        "name": "v", "type": "PairedImageDataset", "dataroot_gt": gt_dir, "dataroot_lq": lq_dir,
        "io_backend": {"type": "disk"}, "phase": "val", "scale": 2, **ds}}}


def test_preflight_pairs_files_through_filename_tmpl(tmp_path):
    """``0001.png`` / ``0001x2.png`` with ``filename_tmpl: '{}x2'`` is a valid BasicSR layout."""
    from basicsr.data.paired_image_dataset import PairedImageDataset

    from addersr_plugin.data.checks import check_datasets

    gt_dir, lq_dir = _tmpl_layout(tmp_path, "x2")
    opt = _paired_opt(gt_dir, lq_dir, filename_tmpl="{}x2")
    # BasicSR itself accepts the layout and pairs 0001.png with 0001x2.png ...
    pairs = PairedImageDataset(dict(opt["datasets"]["val"])).paths
    assert [os.path.basename(p["lq_path"]) for p in pairs] == ["0001x2.png", "0002x2.png"]
    # ... so the preflight must too.
    check_datasets(opt)
    # Without the template the names do not pair, and the message says which file is expected.
    with pytest.raises(DatasetError, match=r"2 GT image\(s\) have no LQ partner in .*lq, e.g. 0001.png needs 0001.png"):
        check_datasets(_paired_opt(gt_dir, lq_dir))
    with pytest.raises(DatasetError, match=r"\(filename_tmpl '\{\}_x2'\), e.g. 0001.png needs 0001_x2.png"):
        check_datasets(_paired_opt(gt_dir, lq_dir, filename_tmpl="{}_x2"))
    with pytest.raises(DatasetError, match=r"filename_tmpl '\{0\}\{1\}' is not a template with one '\{\}'"):
        check_datasets(_paired_opt(gt_dir, lq_dir, filename_tmpl="{0}{1}"))


def test_preflight_checks_the_scale_of_the_templated_partner(tmp_path):
    from addersr_plugin.data.checks import check_datasets

    gt_dir, lq_dir = _tmpl_layout(tmp_path, "x2")
    opt = _paired_opt(gt_dir, lq_dir, filename_tmpl="{}x2")
    opt["scale"] = 4
    with pytest.raises(DatasetError, match=r"scale 4 does not fit the data: 0001.png GT 24x24 vs LQ 12x12"):
        check_datasets(opt)
