"""Scene frames (tfdeblur.scenes) and the per-size scene measures (tfdeblur.scene_eval)."""

import os

import numpy as np
import pytest

from tfdeblur.imageio import SkipLog, read_rgb, write_image
from tfdeblur.scene_eval import found_references, frames_worse, per_size_metrics
from tfdeblur.scenes import SceneError, blur_frames, make_scenes, read_scenes, write_imglab_xml

LFW = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "lfw")


def _photos(n=6):
    people = sorted(os.listdir(LFW))[:n]
    photos = []
    for person in people:
        folder = os.path.join(LFW, person)
        photos.append(read_rgb(os.path.join(folder, sorted(os.listdir(folder))[0]), None))
    # Deep-funneled LFW centres the face; this box is roughly where MTCNN puts it.
    boxes = [np.array([75.0, 70.0, 175.0, 190.0], np.float32)] * len(photos)
    return photos, boxes


def test_scene_builder_is_deterministic_for_a_seed():
    photos, boxes = _photos()
    a = make_scenes(photos, boxes, 3, seed=7, shape=(240, 320))
    b = make_scenes(photos, boxes, 3, seed=7, shape=(240, 320))
    c = make_scenes(photos, boxes, 3, seed=8, shape=(240, 320))
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.boxes, y.boxes)
    assert not all(np.array_equal(x.image, z.image) for x, z in zip(a, c))
    # Frame i depends on (seed, i) only: asking for more frames keeps the first ones.
    more = make_scenes(photos, boxes, 5, seed=7, shape=(240, 320))
    assert np.array_equal(more[2].image, a[2].image)


def test_scene_boxes_are_where_the_faces_were_placed():
    photos, boxes = _photos()
    scenes = make_scenes(photos, boxes, 6, seed=3, shape=(360, 480), heights=(40.0, 120.0))
    checked = 0
    for scene in scenes:
        assert scene.image.shape == (360, 480, 3) and scene.image.dtype == np.uint8
        assert len(scene.boxes) == len(scene.sources) >= 1
        for (x1, y1, x2, y2), src in zip(scene.boxes, scene.sources):
            assert 0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 360
            assert 40 * 0.8 - 1 <= y2 - y1 <= 120 * 1.25 + 1
            # The frame at the box is the source's face box, resized (the paste is opaque there).
            crop = scene.image[int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2].astype(float)
            sx1, sy1, sx2, sy2 = boxes[src]
            from PIL import Image

            face = np.asarray(Image.fromarray(photos[src][int(sy1):int(sy2), int(sx1):int(sx2)]).resize(
                (int(x2) - int(x1), int(y2) - int(y1)), Image.BICUBIC)).astype(float)[2:-2, 2:-2]
            h, w = min(len(crop), len(face)), min(crop.shape[1], face.shape[1])
            other = photos[(src + 1) % len(photos)][int(sy1):int(sy2), int(sx1):int(sx2)]
            other = np.asarray(Image.fromarray(other).resize((int(x2) - int(x1), int(y2) - int(y1)))).astype(float)[2:-2, 2:-2]
            err = np.abs(crop[:h, :w] - face[:h, :w]).mean()
            corr = np.corrcoef(crop[:h, :w].ravel(), face[:h, :w].ravel())[0, 1]
            assert corr > 0.8, corr  # sub-pixel placement and resampling keep it below 1
            assert err < 0.6 * np.abs(crop[:h, :w] - other[:h, :w]).mean()
            checked += 1
    assert checked >= 6


def test_frame_blur_is_one_shake_per_frame_in_pixels():
    photos, boxes = _photos(3)
    frames = [s.image for s in make_scenes(photos, boxes, 2, seed=0, shape=(200, 260))]
    a = blur_frames(frames, seed=1, blur_px=(20, 20))
    assert np.array_equal(a[0], blur_frames(frames, seed=1, blur_px=(20, 20))[0])
    assert a[0].shape == frames[0].shape and not np.array_equal(a[0], frames[0])
    weak = blur_frames(frames, seed=1, blur_px=(3, 3))
    # A longer path blurs more: more detail lost against the sharp frame.
    assert np.abs(a[0].astype(int) - frames[0]).mean() > np.abs(weak[0].astype(int) - frames[0]).mean()
    with pytest.raises(SceneError, match="blur-px"):
        blur_frames(frames, blur_px=(5, 2))


def test_per_size_bins_and_frames_worse_on_known_counts():
    heights = [np.array([20.0, 40.0, 100.0]), np.array([50.0, 300.0])]
    found = {
        "sharp": [np.array([1, 1, 1], bool), np.array([1, 1], bool)],
        "blurred": [np.array([0, 0, 1], bool), np.array([1, 0], bool)],
        "restored": [np.array([0, 1, 0], bool), np.array([1, 1], bool)],  # loses a face in frame 0
        "restored_faces": [np.array([1, 1, 1], bool), np.array([1, 1], bool)],
    }
    ps = per_size_metrics(found, heights)
    assert list(ps) == ["0-32", "32-64", "64-128", "128-256", "256+"]
    assert ps["0-32"]["faces"] == 1 and ps["32-64"]["faces"] == 2 and ps["128-256"]["faces"] == 0
    assert ps["32-64"]["recall"] == {"sharp": 1.0, "blurred": 0.5, "restored": 1.0, "restored_faces": 1.0}
    assert ps["32-64"]["gap_closed"] == {"restored": 1.0, "restored_faces": 1.0}
    assert ps["0-32"]["gap_closed"]["restored"] == 0.0
    assert ps["64-128"]["gap_closed"] == {"restored": None, "restored_faces": None}  # no gap to close
    assert ps["128-256"]["recall"]["sharp"] is None
    assert ps["256+"]["gap_closed"]["restored"] == 1.0
    # Frame 0: blurred finds 1, restored finds 1 (not fewer); make it lose one to count.
    found["restored"][0] = np.array([0, 0, 0], bool)
    assert frames_worse(found) == {"sharp": 0, "restored": 1, "restored_faces": 0}


def test_paired_per_size_counts_the_faces_only_one_run_found():
    from tfdeblur.scene_eval import paired_per_size

    heights = [np.array([20.0, 40.0, 50.0]), np.array([45.0, 100.0])]
    a = [np.array([1, 1, 0], bool), np.array([0, 1], bool)]
    b = [np.array([1, 0, 1], bool), np.array([1, 1], bool)]
    out = paired_per_size(a, b, heights)
    assert out["32-64"] == {"faces": 3, "only_a": 1, "only_b": 2, "p": 1.0}
    assert out["0-32"] == {"faces": 1, "only_a": 0, "only_b": 0, "p": 1.0}
    assert out["64-128"]["only_a"] == out["64-128"]["only_b"] == 0
    assert out["256+"] == {"faces": 0, "only_a": 0, "only_b": 0, "p": None}
    with pytest.raises(ValueError, match="face flags"):
        paired_per_size(a, b[:1], heights)


def test_found_references_matches_each_face_once():
    refs = [[0, 0, 10, 10], [20, 20, 30, 30]]
    assert found_references([[0, 0, 10, 10], [1, 1, 10, 10]], refs).tolist() == [True, False]
    assert found_references([[21, 21, 31, 31]], refs).tolist() == [False, True]
    assert found_references([[50, 50, 60, 60]], refs).tolist() == [False, False]
    assert found_references([], refs).tolist() == [False, False]


def test_read_scenes_skips_bad_frames_with_one_line_each(tmp_path):
    img = np.full((60, 80, 3), 128, np.uint8)
    for name in ("ok", "nobox", "outside", "empty"):
        write_image(str(tmp_path / f"{name}.png"), img)
    write_imglab_xml(str(tmp_path / "scenes.xml"), [
        ("ok.png", [[10, 10, 30, 40]]),
        ("nobox.png", []),
        ("outside.png", [[50, 10, 120, 40]]),
        ("missing.png", [[1, 1, 5, 5]]),
    ])
    log = SkipLog(stream=open(os.devnull, "w"))
    scenes = read_scenes(str(tmp_path), log=log)
    assert [s.name for s in scenes] == ["ok"]
    np.testing.assert_allclose(scenes[0].boxes, [[10, 10, 30, 40]])
    reasons = dict(log.skipped)
    assert len(reasons) == 3
    assert "no face box" in reasons[str(tmp_path / "nobox.png")]
    assert "outside" in reasons[str(tmp_path / "outside.png")]
    assert all("\n" not in r for r in reasons.values())


def test_read_scenes_refuses_an_empty_folder(tmp_path):
    with pytest.raises(SceneError, match="no imglab"):
        read_scenes(str(tmp_path))
    with pytest.raises(SceneError, match="no such folder"):
        read_scenes(str(tmp_path / "nope"))
    write_imglab_xml(str(tmp_path / "s.xml"), [("gone.png", [[1, 1, 5, 5]])])
    with pytest.raises(SceneError, match="every frame was skipped"):
        read_scenes(str(tmp_path), log=SkipLog(stream=open(os.devnull, "w")))
