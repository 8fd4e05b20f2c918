"""Scale-aware face restoration in frames: tfdeblur.deblur_faces."""

import os

import numpy as np
import pytest

import tfdeblur
from tfdeblur.imageio import read_rgb
from tfdeblur.scenes import blur_frames, compose_scene

LFW = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "lfw")
FAST = os.path.join(os.path.dirname(tfdeblur.__file__), "pretrained", "generator_fast.keras")
BOX = np.array([75.0, 70.0, 175.0, 190.0], np.float32)  # the face in a deep-funneled LFW photo


@pytest.fixture(scope="module")
def model():
    return tfdeblur.load_model(FAST)


def _photo(person_index):
    person = sorted(os.listdir(LFW))[person_index]
    folder = os.path.join(LFW, person)
    return read_rgb(os.path.join(folder, sorted(os.listdir(folder))[0]), None)


def _one_face_frame(person_index, height, seed=0, shape=(240, 320)):
    photo = _photo(person_index)
    rng = np.random.default_rng(seed)
    scene = compose_scene(rng, [photo], [BOX], [photo], shape=shape, heights=(height, height), max_faces=1)
    assert len(scene.boxes) == 1
    return scene


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def test_deblur_faces_is_exported_beside_deblur():
    from tfdeblur import faces

    assert tfdeblur.deblur_faces is faces.deblur_faces
    assert "deblur_faces" in tfdeblur.__all__


def test_a_frame_without_faces_is_returned_unchanged(model):
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(128, 20, (200, 280, 3)), 0, 255).astype(np.uint8)
    out, regions = tfdeblur.deblur_faces(model, frame)
    assert regions == []
    assert np.array_equal(out, frame)


def test_tiny_faces_are_left_alone(model):
    scene = _one_face_frame(3, 12.0)
    blurred = blur_frames([scene.image], seed=0, blur_px=(4, 4))[0]
    out, regions = tfdeblur.deblur_faces(model, blurred, faces=scene.boxes)  # a 12 px face, given
    assert regions == [] and np.array_equal(out, blurred)
    out, regions = tfdeblur.deblur_faces(model, blurred)  # and not proposed either
    assert all(r[3] - r[1] >= 16 for r in regions)


def test_a_face_is_restored_at_the_models_scale_whatever_its_size(model):
    """The same face at 48 and 160 px, the shake scaled with it: both gain over blurred, inside
    the face box; pixels outside the blended regions are untouched."""
    for height, px in ((48.0, 9.0), (160.0, 30.0)):
        scene = _one_face_frame(5, height, seed=1, shape=(360, 480))
        blurred = blur_frames([scene.image], seed=2, blur_px=(px, px))[0]
        out, regions = tfdeblur.deblur_faces(model, blurred, faces=scene.boxes)
        assert len(regions) == 1
        x1, y1, x2, y2 = scene.boxes[0].astype(int)
        sharp_face, blurred_face, out_face = (im[y1:y2, x1:x2] for im in (scene.image, blurred, out))
        assert _psnr(out_face, sharp_face) > _psnr(blurred_face, sharp_face) + 0.5, height
        rx0, ry0, rx1, ry1 = regions[0]
        outside = np.ones(blurred.shape[:2], bool)
        outside[ry0:ry1, rx0:rx1] = False
        assert np.array_equal(out[outside], blurred[outside])


def test_a_face_the_plain_detector_misses_in_the_blurred_frame_is_found_and_restored(model):
    from tfdeblur.detectors import MTCNNDetector
    from tfdeblur.scene_eval import found_references

    scene = _one_face_frame(3, 56.0, seed=3, shape=(200, 260))
    blurred = blur_frames([scene.image], seed=3, blur_px=(22, 22))[0]
    plain = MTCNNDetector()
    assert found_references([f.box for f in plain.detect([scene.image])[0]], scene.boxes)[0]  # sharp: found
    assert not found_references([f.box for f in plain.detect([blurred])[0]], scene.boxes)[0]  # blurred: missed
    out, regions = tfdeblur.deblur_faces(model, blurred)
    x1, y1, x2, y2 = scene.boxes[0]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    covering = [r for r in regions if r[0] <= cx <= r[2] and r[1] <= cy <= r[3]]
    assert len(covering) == 1 and (y2 - y1) <= covering[0][3] - covering[0][1] <= 3 * (y2 - y1)
    b = scene.boxes[0].astype(int)
    face = (slice(b[1], b[3]), slice(b[0], b[2]))
    assert _psnr(out[face], scene.image[face]) > _psnr(blurred[face], scene.image[face]) + 0.5
    assert found_references([f.box for f in plain.detect([out])[0]], scene.boxes)[0]  # and MTCNN finds it now


class _NoDetector:
    def detect(self, images):
        raise AssertionError("a face crop must not start the detector")


class _FixedDetector:
    def __init__(self, boxes):
        self.boxes, self.calls, self.seen = boxes, 0, []

    def detect(self, images):
        self.calls += 1
        self.seen += list(images)
        return [list(self.boxes)]


def test_deblur_frame_restores_the_frame_and_its_shown_faces_at_scale(model):
    """Whole frame restored; the faces the detector finds in the blurred frame or in the whole-frame
    restoration are restored again at the model's scale over it (the same face in both looks once);
    a face crop is restored whole, without a detector. (MTCNN alone, so it looks at both.)"""
    assert tfdeblur.deblur_frame is __import__("tfdeblur.faces").faces.deblur_frame
    scene = _one_face_frame(5, 48.0, seed=1, shape=(360, 480))
    blurred = blur_frames([scene.image], seed=2, blur_px=(9.0, 9.0))[0]
    detector = _FixedDetector(scene.boxes)
    out, regions = tfdeblur.deblur_frame(model, blurred, detector=detector, proposal_model=False, blazeface=False)
    whole = tfdeblur.deblur(model, blurred)
    assert detector.calls == 2 and len(regions) == 1
    assert np.array_equal(detector.seen[0], blurred) and np.array_equal(detector.seen[1], whole)
    faces_only, _ = tfdeblur.deblur_faces(model, blurred, faces=scene.boxes)
    rx0, ry0, rx1, ry1 = regions[0]
    outside = np.ones(blurred.shape[:2], bool)
    outside[ry0:ry1, rx0:rx1] = False
    assert np.array_equal(out[outside], whole[outside])  # the whole-frame restoration around the face
    x1, y1, x2, y2 = scene.boxes[0].astype(int)
    assert np.abs(out[y1:y2, x1:x2].astype(int) - faces_only[y1:y2, x1:x2]).max() <= 1  # the face at scale
    assert not np.array_equal(out[y1:y2, x1:x2], whole[y1:y2, x1:x2])

    crop = blur_frames([_photo(2)], seed=0, blur_px=(20, 20))[0]  # a 250x250 LFW crop
    out, regions = tfdeblur.deblur_frame(model, crop, detector=_NoDetector())
    assert regions == [] and np.array_equal(out, tfdeblur.deblur(model, crop))


def test_the_2x_look_has_its_own_4_block_generator_loaded_once():
    from tfdeblur import faces
    from tfdeblur.models import count_res_blocks

    look = faces._proposal_model(None, "fast")
    assert count_res_blocks(look) == 4 and faces._proposal_model(None, "fast") is look
    assert faces.LOOK_MODEL.endswith("generator_look.keras")
    model = object()
    assert faces._proposal_model(model, None) is model and faces._proposal_model(model, False) is None


def test_tiled_blazeface_proposes_a_small_face_that_relaxed_mtcnn_misses(model):
    """A 36 px face under a 24 px shake: relaxed MTCNN does not find it in the blurred frame (no
    box at IoU >= 0.5), the second proposal detector (tiled BlazeFace) does, and deblur_faces
    restores it."""
    from tfdeblur import faces
    from tfdeblur.scene_eval import found_references

    scene = _one_face_frame(10, 36.0, seed=10, shape=(200, 260))
    blurred = blur_frames([scene.image], seed=10, blur_px=(24, 24))[0]
    relaxed = faces.proposal_detector()
    for blazeface, want in ((False, False), (True, True)):
        proposals = faces.propose_faces(blurred, relaxed, blazeface=blazeface)
        assert found_references([faces._box(f) for f in proposals], scene.boxes)[0] == want, blazeface
    out, regions = tfdeblur.deblur_faces(model, blurred, proposal_model=False)
    b = scene.boxes[0].astype(int)
    face = (slice(b[1], b[3]), slice(b[0], b[2]))
    assert any(r[0] <= b[0] and r[1] <= b[1] and r[2] >= b[2] and r[3] >= b[3] for r in regions)
    assert _psnr(out[face], scene.image[face]) > _psnr(blurred[face], scene.image[face]) + 0.5


def test_blazeface_boxes_are_mapped_to_mtcnn_box_convention():
    """BlazeFace's boxes are shorter and wider than MTCNN's; the mapped box keeps the centre's x,
    grows the height by 1/0.875, narrows the width by 1/1.18, and lies closer to MTCNN's box on a
    real face than the raw one."""
    from tfdeblur import faces
    from tfdeblur.evaluation.matching import iou

    mapped = faces.blazeface_to_mtcnn_box([100.0, 100.0, 159.0, 135.0])
    assert np.isclose((mapped[0] + mapped[2]) / 2, 129.5)
    assert np.isclose(mapped[3] - mapped[1], 35.0 / 0.875) and np.isclose(mapped[2] - mapped[0], 59.0 / 1.18)
    assert (mapped[1] + mapped[3]) / 2 < 117.5  # the centre moves up (MTCNN's box takes in the brow)
    scene = _one_face_frame(6, 60.0, seed=2, shape=(240, 320))
    (bf,) = faces.blazeface_proposal_detector().detect([scene.image])[0][:1]
    raw, fitted = iou(bf.box, scene.boxes[0]), iou(faces.blazeface_to_mtcnn_box(bf.box), scene.boxes[0])
    assert fitted > raw and fitted > 0.6


def test_where_regions_overlap_the_more_confident_face_is_blended_on_top(model):
    """A weak proposal on part of a face (restored at another scale) must not paint over the
    face's own restoration: regions are blended least confident first."""
    from tfdeblur.detectors import Face

    scene = _one_face_frame(5, 80.0, seed=1, shape=(240, 320))
    blurred = blur_frames([scene.image], seed=2, blur_px=(12, 12))[0]
    face = Face(scene.boxes[0], 0.99)
    x1, y1, x2, y2 = scene.boxes[0]
    part = Face(np.array([x1, y1, x1 + 0.5 * (x2 - x1), y1 + 0.4 * (y2 - y1)], np.float32), 0.35)  # an eye region
    alone, _ = tfdeblur.deblur_faces(model, blurred, faces=[face])
    for order in ([face, part], [part, face]):
        out, regions = tfdeblur.deblur_faces(model, blurred, faces=order)
        assert len(regions) == 2
        b = scene.boxes[0].astype(int)
        assert np.array_equal(out[b[1]:b[3], b[0]:b[2]], alone[b[1]:b[3], b[0]:b[2]])


class _RecordingDetector:
    """A stand-in for MTCNN that records which images it was asked to look at and finds nothing."""

    def __init__(self):
        self.seen = []

    def detect(self, images):
        self.seen += [np.asarray(im) for im in images]
        return [[] for _ in images]


def test_mtcnn_looks_at_the_restorations_and_blazeface_at_the_blurred_frame():
    """With tiled BlazeFace there, MTCNN does not look at the blurred frame (the fast mode runs no
    MTCNN at all); without it, or when asked, MTCNN looks at the blurred frame too. BlazeFace's
    proposals are there either way."""
    from tfdeblur import faces

    scene = _one_face_frame(4, 70.0, seed=3, shape=(200, 260))
    blurred = blur_frames([scene.image], seed=3, blur_px=(8, 8))[0]
    restored = np.ascontiguousarray(blurred[:, ::-1])  # any other view will do for who-looks-where

    mtcnn = _RecordingDetector()
    fast = faces.propose_faces(blurred, mtcnn)
    assert mtcnn.seen == [] and len(fast) >= 1  # the fast mode: BlazeFace alone found the face
    faces.propose_faces(blurred, mtcnn, restored=restored)
    assert len(mtcnn.seen) == 1 and np.array_equal(mtcnn.seen[0], restored)

    for kwargs in ({"mtcnn_on_blurred": True}, {"blazeface": False}):
        mtcnn = _RecordingDetector()
        proposals = faces.propose_faces(blurred, mtcnn, restored=restored, **kwargs)
        assert len(mtcnn.seen) == 2 and np.array_equal(mtcnn.seen[0], blurred), kwargs
        assert (len(proposals) >= 1) == ("mtcnn_on_blurred" in kwargs), kwargs
