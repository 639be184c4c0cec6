import numpy as np
import pytest

from samtrack.pipeline.core.frames import FrameObjects, boxes_from_masks


def _id_map():
    m = np.zeros((20, 30), dtype=np.uint16)
    m[2:6, 3:9] = 7
    m[10:19, 20:29] = 300
    return m


def test_from_id_map_splits_objects_with_ids_and_boxes():
    obj = FrameObjects.from_id_map(_id_map(), frame_index=4, frame_name="000004")
    assert len(obj) == 2
    assert obj.source_ids.tolist() == [7, 300]
    assert obj.track_ids.tolist() == [-1, -1]
    np.testing.assert_array_equal(obj.boxes, [[3, 2, 9, 6], [20, 10, 29, 19]])
    assert obj.areas.tolist() == [24, 81]
    assert obj.image_size == (20, 30)


def test_id_map_round_trip_through_track_ids():
    obj = FrameObjects.from_id_map(_id_map(), frame_index=0)
    tracked = obj.with_track_ids(obj.source_ids)
    np.testing.assert_array_equal(tracked.to_id_map(), _id_map())
    np.testing.assert_array_equal(obj.to_id_map("source"), _id_map())


def test_compact_rle_keeps_masks_boxes_and_areas():
    obj = FrameObjects.from_id_map(_id_map(), frame_index=0)
    dense, boxes = obj.masks.copy(), obj.boxes.copy()
    obj.compact()
    assert obj.is_compact
    np.testing.assert_array_equal(obj.masks, dense)
    np.testing.assert_array_equal(obj.boxes, boxes)
    assert obj.areas.tolist() == [24, 81]
    again = FrameObjects.from_rles(obj.rles, obj.image_size, frame_index=0)
    np.testing.assert_array_equal(again.boxes, boxes)


def test_indexing_keeps_columns_aligned():
    obj = FrameObjects.from_id_map(_id_map(), frame_index=0).with_track_ids([5, 6])
    sub = obj[np.array([False, True])]
    assert sub.source_ids.tolist() == [300] and sub.track_ids.tolist() == [6]
    assert sub.masks.shape == (1, 20, 30)
    assert obj[0].source_ids.tolist() == [7]


def test_empty_frame_and_empty_mask_box():
    empty = FrameObjects.empty((5, 6), frame_index=0)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)
    assert empty.to_id_map().shape == (5, 6)
    np.testing.assert_array_equal(boxes_from_masks(np.zeros((1, 4, 4), bool)), [[0, 0, 0, 0]])


def test_mismatched_columns_are_rejected():
    with pytest.raises(ValueError, match=r"scores has 1 values for 2 objects"):
        FrameObjects.from_masks(np.zeros((2, 4, 4), bool), frame_index=0, scores=[0.5])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        FrameObjects.from_masks(np.zeros((4, 4), bool), frame_index=0)


def test_masks_are_carried_cut_to_their_boxes_and_given_boxes_are_honoured():
    import cv2

    masks = np.zeros((2, 60, 80), bool)
    cv2.circle(masks[0].view(np.uint8), (20, 30), 8, 1, -1)
    masks[1, 5:9, 70:80] = True
    plain = FrameObjects.from_masks(masks)
    hinted = FrameObjects.from_masks(masks, boxes=[[10, 20, 30.5, 40], [69, 4, 80, 10]])
    for objects in (plain, hinted):
        np.testing.assert_array_equal(objects.boxes, [[12, 22, 29, 39], [70, 5, 80, 9]])
        np.testing.assert_array_equal(objects.masks, masks)
        assert [p.shape for p, _ in objects.crops] == [(17, 17), (4, 10)]
        np.testing.assert_array_equal(objects.areas, masks.sum(axis=(1, 2)))
    # the RLE made from the crops is the one pycocotools makes from the full frame
    from samtrack.pipeline.core.frames import encode_rle

    assert [r["counts"] for r in plain.rles] == [r["counts"] for r in encode_rle(masks)]
    np.testing.assert_array_equal(plain.compact().masks, masks)


def test_id_map_with_no_object_and_with_several():
    empty = FrameObjects.from_id_map(np.zeros((5, 6), np.uint16), frame_index=3)
    assert len(empty) == 0 and empty.masks.shape == (0, 5, 6)
    id_map = np.zeros((5, 6), np.uint16)
    id_map[1:3, 1:3] = 7
    id_map[4, 5] = 2
    objects = FrameObjects.from_id_map(id_map, frame_index=0)
    assert objects.source_ids.tolist() == [2, 7]
    np.testing.assert_array_equal(objects.to_id_map("source"), id_map)


def test_objects_at_a_pixel():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 2:5, 2:5] = True
    masks[1, 4:8, 4:8] = True
    objects = FrameObjects.from_masks(masks)
    assert objects.at(4, 4).tolist() == [0, 1]
    assert objects.at(2, 2).tolist() == [0]
    assert objects.at(9, 9).tolist() == []
