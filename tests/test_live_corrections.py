"""The live page's corrections on their own: the identity map, names, selection, the log."""

import json

import numpy as np
import pytest

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.live.corrections import Corrections, RequestError


def _frame(track_ids, source_ids=None):
    masks = np.zeros((len(track_ids), 20, 40), bool)
    for i in range(len(track_ids)):
        masks[i, 5:10, 5 + 10 * i:10 + 10 * i] = True
    objects = FrameObjects.from_masks(masks, source_ids=source_ids)
    return objects.with_track_ids(track_ids)


def test_a_swap_then_this_is_restores_the_map_and_never_shows_one_identity_twice():
    said = Corrections()
    said.name(1, "Sheep1")
    said.swap((1, 1), (2, 2))
    shown, tracker_ids = said.display(_frame([1, 2]))
    assert shown.track_ids.tolist() == [2, 1] and tracker_ids.tolist() == [1, 2]
    # "tracker id 1's object (showing 2 now) is Sheep1"
    assert said.assign(said.displayed(1), 1, "Sheep1", seen={1, 2}) == 1
    assert said.display(_frame([1, 2]))[0].track_ids.tolist() == [1, 2]
    with pytest.raises(RequestError, match="no identity is named 'Nobody'"):
        said.assign(1, 1, "Nobody", seen={1, 2})
    with pytest.raises(RequestError, match="same object"):
        said.swap((1, 1), (1, 1))


def test_names_are_unique_and_the_selection_hides_the_rest():
    said = Corrections()
    said.name(3, "Dolly")
    with pytest.raises(RequestError, match="already belongs to identity 3") as err:
        said.name(4, "Dolly")
    assert err.value.status == 409
    said.select(2)
    assert said.display(_frame([1, 2, 3]))[0].track_ids.tolist() == [2]
    said.remove(2)
    said.select(3)
    assert said.display(_frame([1, 2, 3]))[0].track_ids.tolist() == [3]


def test_a_prompted_object_joins_the_selection_with_its_name_once_it_has_an_identity():
    said = Corrections()
    said.select_prompt(1000, "Sheep9")
    assert said.display(_frame([-1, 5], source_ids=[1000, 7]))[0].track_ids.tolist() == [-1, 5]
    shown, _ = said.display(_frame([4, 5], source_ids=[1000, 7]))
    assert shown.track_ids.tolist() == [4] and said.names == {4: "Sheep9"}


def test_every_action_is_logged_in_order_with_its_frame(tmp_path):
    said = Corrections()
    said.record({"frame": 7, "kind": "swap", "ids": [1, 2]}, tmp_path, "c.jsonl")
    said.record({"frame": 9, "kind": "name", "id": 1, "name": "A"}, tmp_path, "c.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [(e["frame"], e["kind"]) for e in lines] == [(7, "swap"), (9, "name")]
    assert list(lines[0])[:2] == ["frame", "time"] and said.log == lines
