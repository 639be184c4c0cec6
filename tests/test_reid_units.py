import numpy as np
import pytest

from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.sources.masks import box_masks
from samtrack.reid.association import assign
from samtrack.reid.contrast import SceneContrast
from samtrack.reid.costs import AppearanceCost, PositionCost, Side, patch_iou
from samtrack.reid.embedders import HistogramEmbedder, MobileNetV2Embedder
from samtrack.reid.motion import BoxKalman, mahalanobis_centres, predict_all, update_all
from samtrack.reid.policies import ContainmentDuplicates, ReentryRules
from samtrack.reid.tracker import covered_by_others
from samtrack.reid.tracks import Gallery, LastSeen


def test_kalman_learns_constant_velocity():
    kf = BoxKalman(np.array([0, 0, 10, 10]))
    for t in range(1, 15):
        kf.predict()
        kf.update(np.array([3 * t, 0, 3 * t + 10, 10]))
    predicted = kf.predict()
    assert predicted[0] == pytest.approx(3 * 15 + 5, abs=0.5)
    assert kf.velocity[0] == pytest.approx(3.0, abs=0.1)


def test_kalman_gate_grows_with_time_unseen():
    kf = BoxKalman(np.array([0, 0, 10, 10]))
    far = np.array([[30, 0, 40, 10]])
    kf.predict()
    near_d = kf.mahalanobis(far)[0]
    for _ in range(10):
        kf.predict()
    assert kf.mahalanobis(far)[0] < near_d  # uncertainty grows, the same jump becomes plausible
    kf.freeze_velocity()
    assert (kf.velocity == 0).all()


def test_assign_respects_limit_and_inf():
    cost = np.array([[0.1, 0.9], [np.inf, 0.2], [0.05, 0.8]])
    pairs = assign(cost, 0.5)
    assert sorted(pairs) == [(1, 1), (2, 0)]
    assert assign(np.zeros((0, 3)), 1.0) == []


def test_assign_limits_pairs_and_full_matches_every_row_of_the_smaller_side():
    cost = np.array([[0.1, 0.9, np.inf], [0.8, 0.2, 0.95], [0.5, 0.4, 0.99]])
    assert sorted(assign(cost, 0.6)) == [(0, 0), (1, 1)]  # row 2's best pairs cost >= 0.6
    assert sorted(assign(cost, np.inf)) == [(0, 0), (1, 1), (2, 2)]
    assert sorted(assign(cost, 0.6, full=True)) == [(0, 0), (1, 1), (2, 2)]
    assert assign(np.array([[np.inf, np.inf]]), np.inf, full=True) == []  # never an impossible one
    rng = np.random.default_rng(0)
    wide = rng.random((3, 7))
    assert len(assign(wide, 0.0, full=True)) == 3


def test_patch_iou_with_offsets():
    a = np.ones((4, 4), bool)
    assert patch_iou(a, (0, 0), a, (0, 0)) == 1.0
    assert patch_iou(a, (0, 0), a, (2, 0)) == pytest.approx(8 / 24)
    assert patch_iou(a, (0, 0), a, (10, 10)) == 0.0


def test_gallery_min_distance_and_bank():
    g = Gallery(size=2, min_distance=0.01)
    e1 = np.array([1.0, 0.0], np.float32)
    e2 = np.array([0.0, 1.0], np.float32)
    g.add(e1)
    g.add(e1)  # not distinct: bank keeps one
    assert len(g.bank) == 1
    g.add(e2)
    assert g.distance(np.stack([e1, e2])).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert np.isnan(Gallery().distance(e1[None])[0])


def test_position_cost_prefers_the_exit_point():
    left = LastSeen(0, np.array([5.0, 50.0]), ("left",))
    right = LastSeen(0, np.array([195.0, 50.0]), ("right",))
    rows = Side(positions=np.stack([left.centroid, right.centroid]), size=2)
    cost = PositionCost(200.0).matrix(rows, Side(positions=np.array([[8.0, 55.0]]), size=1))
    assert cost[0, 0] < 0.05 < 0.9 < cost[1, 0]


def test_bad_tracker_config_is_a_clear_error():

    with pytest.raises(ConfigError, match=r"tracker.appearance.weight: input should be greater "
                                          "than or equal to 0"):
        load_config(None, {"tracker.appearance.weight": -1})
    with pytest.raises(ConfigError, match=r"tracker.embedder: unknown embedder 'resnet'"):
        load_config(None, {"tracker.embedder": "resnet"})


def test_mobilenet_loads_offline_and_is_deterministic():
    from reid_helpers import BLUE, RED, frame


    emb = MobileNetV2Embedder()
    image, objs = frame(0, [((50, 60), RED, 1), ((150, 60), BLUE, 2)], radius=18)
    a = emb.embed(image, objs)
    b = emb.embed(image, objs)
    assert a.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert float(a[0] @ a[1]) < 0.99  # different crops, different vectors


def test_histogram_embedder_separates_colours():
    from reid_helpers import BLUE, RED, frame


    image, objs = frame(0, [((50, 60), RED, 1), ((150, 60), BLUE, 2)])
    v = HistogramEmbedder().embed(image, objs)
    image2, objs2 = frame(1, [((60, 60), RED, 1)])
    w = HistogramEmbedder().embed(image2, objs2)
    assert 1 - float(v[0] @ w[0]) < 0.05 < 1 - float(v[1] @ w[0])


def test_embedder_handles_empty_frames():

    empty = FrameObjects.empty((10, 10), frame_index=0)
    assert HistogramEmbedder().embed(np.zeros((10, 10, 3), np.uint8), empty).shape[0] == 0


def test_batched_mahalanobis_equals_each_filters_own():

    rng = np.random.default_rng(1)
    filters = []
    for k in range(5):
        f = BoxKalman(np.array([10.0 * k, 20, 10.0 * k + 30, 60]))
        for step in range(1, 4):
            f.predict()
            f.update(np.array([10.0 * k + 3 * step, 20 + step, 10.0 * k + 31, 61 + step]))
        f.predict()
        filters.append(f)
    boxes = rng.uniform(0, 100, (7, 4))
    boxes[:, 2:] += boxes[:, :2]
    batched = mahalanobis_centres(filters, boxes)
    for k, f in enumerate(filters):
        assert batched[k] == pytest.approx(f.mahalanobis(boxes), rel=1e-9)


def _textbook_kalman_step(f: BoxKalman, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The constant-velocity filter's predict then update, written out in full matrices."""
    transition = np.eye(8)
    transition[:4, 4:] = np.eye(4)
    measure = np.eye(4, 8)
    x = transition @ f.x
    x[2:4] = np.maximum(x[2:4], 1.0)
    h = max(x[3], 1.0)
    q = np.diag(np.r_[np.full(4, f.pos_noise ** 2), np.full(4, f.vel_noise ** 2)] * h * h)
    p = transition @ f.P @ transition.T + q
    r = np.eye(4) * (f.meas_noise * h) ** 2
    gain = p @ measure.T @ np.linalg.inv(measure @ p @ measure.T + r)
    x1, y1, x2, y2 = box
    z = np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)])
    return x + gain @ (z - measure @ x), (np.eye(8) - gain @ measure) @ p


def test_batched_predict_and_update_give_each_filters_own_numbers_exactly():
    """The tracker predicts and updates all its filters at once: each filter's numbers must be
    the same to the bit as on its own (the benchmark's identities depend on these states),
    and the filter's, written out in full matrices."""
    rng = np.random.default_rng(3)

    def filters() -> list[BoxKalman]:
        made = []
        for k in range(6):
            f = BoxKalman(np.array([10.0 * k, 20, 10.0 * k + 30 + k, 60]),
                          pos_noise=0.03 + 0.01 * k, meas_noise=0.05 + 0.02 * k)
            if k % 2:
                f.freeze_velocity()
            made.append(f)
        return made

    one_by_one, batched = filters(), filters()
    for _ in range(5):
        boxes = rng.uniform(0, 200, (6, 4))
        boxes[:, 2:] = boxes[:, :2] + rng.uniform(0.2, 60, (6, 2))  # some boxes under a pixel
        expected = [_textbook_kalman_step(f, box) for f, box in zip(one_by_one, boxes,
                                                                     strict=True)]
        for f, box in zip(one_by_one, boxes, strict=True):
            f.predict()
            f.update(box)
        for f, (x, p) in zip(one_by_one, expected, strict=True):
            assert np.allclose(f.x, x, rtol=1e-9, atol=1e-9)
            assert np.allclose(f.P, p, rtol=1e-9, atol=1e-6)
        predict_all(batched)
        update_all(batched, boxes)
        for a, b in zip(one_by_one, batched, strict=True):
            assert np.array_equal(a.x, b.x) and np.array_equal(a.P, b.P)
    predict_all([])
    update_all([], np.zeros((0, 4)))


def test_batched_appearance_distance_equals_each_gallerys_own():

    rng = np.random.default_rng(2)
    galleries = [Gallery(size=3), Gallery(size=3), Gallery(size=3)]
    for g, n in zip(galleries, (5, 0, 2), strict=True):  # the middle one stays empty
        for _ in range(n):
            v = rng.normal(size=8)
            g.add((v / np.linalg.norm(v)).astype(np.float32))
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    got = AppearanceCost().matrix(Side(views=[g.matrix() for g in galleries], size=3),
                                  Side(views=queries, size=len(queries)))
    assert got[0] == pytest.approx(galleries[0].distance(queries), abs=1e-6)
    assert np.isnan(got[1]).all()
    assert got[2] == pytest.approx(galleries[2].distance(queries), abs=1e-6)


def test_gallery_bank_is_a_ring_of_the_last_distinct_views():
    g = Gallery(size=2, min_distance=0.01)
    views = np.eye(3, dtype=np.float32)
    for v in views:
        g.add(v)
    assert [int(np.argmax(v)) for v in g.bank] == [1, 2]  # the oldest (0) was replaced
    assert g.matrix().shape == (3, 3)  # average + two views


def test_scene_contrast_is_a_low_quantile_of_nearest_other_distances():

    contrast = SceneContrast(size=100, quantile=0.5, min_samples=4)
    # three unit vectors: a and b 60 degrees apart (distance 0.5), c orthogonal to both
    a, b, c = np.eye(3)[0], np.array([0.5, np.sqrt(3) / 2, 0.0]), np.eye(3)[2]
    views = np.stack([a, b, c]).astype(np.float32)
    contrast.observe(views, views)
    # nearest other: a -> b 0.5, b -> a 0.5, c -> a or b 1.0; not yet min_samples
    assert contrast.samples == 3 and contrast.scale() is None
    contrast.observe(views, views)
    assert contrast.scale() == pytest.approx(0.5)
    contrast.observe(views[:1], views[:1])  # one object alone says nothing about contrast
    assert contrast.samples == 6


def test_scene_contrast_own_scale_is_a_high_quantile_of_distances_to_the_own_identity():

    contrast = SceneContrast(size=100, quantile=0.1, min_samples=4)
    a, b = np.eye(3)[0], np.eye(3)[1]
    means = np.stack([a, b]).astype(np.float32)
    tilted = np.stack([a * 0.8 + b * 0.6, b]).astype(np.float32)  # the first 0.2 off its mean
    for _ in range(10):
        contrast.observe(means, means)
    assert contrast.own_scale() == pytest.approx(0.0, abs=1e-6)
    for _ in range(10):
        contrast.observe(tilted, means)
    assert contrast.own_scale() == pytest.approx(0.2, abs=1e-6)


def _unit(cosine: float) -> np.ndarray:
    """A unit vector at this cosine to (1, 0, 0)."""
    return np.array([cosine, np.sqrt(1.0 - cosine**2), 0.0])


def test_the_reentry_limit_never_falls_below_how_far_one_object_is_from_itself():
    # look-alikes: the two identities' means are 0.002 apart, closer than the second object's
    # own views are to its mean: half the distinct objects' scale would turn the object
    # itself away when it returns
    rules = ReentryRules(gate=0.6, contrast=0.5, hold_contested="margin", hold_margin=0.1)
    rules.scene = SceneContrast(size=100, quantile=0.1, min_samples=4)
    means = np.stack([_unit(1.0), _unit(0.998)]).astype(np.float32)
    views = np.stack([_unit(1.0), _unit(0.99)]).astype(np.float32)
    for _ in range(20):
        rules.scene.observe(views, means)
    own = rules.scene.own_scale()
    assert own > 0.5 * rules.scene.scale()
    assert rules.limit() == pytest.approx(own)
    rules.own_floor = False  # the offline engine's online pass: the contrast limit alone
    assert rules.limit() == pytest.approx(0.5 * rules.scene.scale())
    # distinct objects that differ by more than their own spread keep the contrast limit
    apart = ReentryRules(gate=0.6, contrast=0.5, hold_contested="margin", hold_margin=0.1)
    apart.scene = SceneContrast(size=100, quantile=0.1, min_samples=4)
    for _ in range(20):
        apart.scene.observe(np.eye(3)[:2].astype(np.float32), np.eye(3)[:2].astype(np.float32))
    assert apart.limit() == pytest.approx(0.5)


def test_covered_by_others_flags_a_sliver_inside_a_neighbour():

    boxes = np.array([[0, 0, 40, 40], [30, 10, 38, 20], [35, 0, 80, 40]], float)
    # the sliver lies wholly inside the first box; the third overlaps the first only at its edge
    assert covered_by_others(boxes).tolist() == [False, True, False]


def test_kalman_velocity_noise_sets_how_fast_it_follows_acceleration():
    def velocity_error(vel_noise: float) -> float:
        kf = BoxKalman(np.array([0, 0, 40, 40]), vel_noise=vel_noise)
        x = 0.0
        for t in range(1, 8):  # speeds up by 2 px/frame each frame (a car nearing the camera)
            x += 2 * t
            kf.predict()
            kf.update(np.array([x, 0, x + 40, 40]))
        return abs(kf.velocity[0] - 2 * 7)

    assert velocity_error(0.02) < velocity_error(0.01)


def _side_by_side() -> FrameObjects:
    """Three boxes in a row, each overlapping its neighbours by IoU 0.43 and the far one by
    0.11; stored worst-first, so a pass in storage order would not be NMS."""
    boxes = np.array([[8, 0, 10, 10], [4, 0, 10, 10], [0, 0, 10, 10]], float)  # C, B, A
    return FrameObjects.from_masks(box_masks(boxes, (12, 20)), frame_index=0,
                                   scores=[0.7, 0.8, 0.9])


def test_duplicate_iou_is_greedy_nms_best_scored_first():
    keep, dropped = ContainmentDuplicates(0.8, iou=0.3)(_side_by_side())
    # A (best) suppresses B; B, suppressed, no longer suppresses C (which A barely touches)
    assert keep.tolist() == [True, False, True] and dropped == [1]


def test_duplicate_iou_off_or_above_the_overlap_keeps_side_by_side_boxes():
    for policy in (ContainmentDuplicates(0.8, None), ContainmentDuplicates(0.8, iou=0.5)):
        keep, dropped = policy(_side_by_side())
        assert keep.all() and dropped == []  # neither holds 80% of the other either
