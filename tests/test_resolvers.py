"""The identity engines behind one interface (reid.resolvers): what they show, the repairs they
record, the summary and timing every finished clip carries, and the options that name them."""

import numpy as np
import pytest

from samtrack.eval.bench.harness import synthetic_clip
from samtrack.eval.bench.sets import scene_sets
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.errors import ConfigError
from samtrack.reid import RESOLVERS, IdentityResolver, ReidTracker, Tracker, TrackerConfig

CLIP = None


def _clip():
    global CLIP
    if CLIP is None:  # a look-alike scene with SAM2-style swaps, drops and spurious masks
        CLIP = synthetic_clip(scene_sets(1, 80, sets=("crowded",), split="tune")[0])
    return CLIP


def _track(frames=None, **options):
    clip = _clip()
    tracker = TrackerConfig.from_dotted({"embedder": "histogram", **options}).build()
    outputs = [tracker.update(objects, clip.image(t))
               for t, objects in enumerate(clip.inputs[:frames])]
    finished = tracker.finalize()
    if tracker.needs_whole_clip:
        outputs = finished.frames
    return outputs, finished


@pytest.mark.parametrize("options", [
    {"identities": "gallery", "reentry.hold_contested": "off"},
    pytest.param({"identities": "model", "reentry.hold_contested": "off"},
                 marks=pytest.mark.slow),
    pytest.param({"identities": "offline"}, marks=pytest.mark.slow)])
def test_every_repair_names_an_identity_shown_on_its_object_in_its_frame(options):
    outputs, finished = _track(**options)
    repairs = [r for r in finished.repairs if r["kind"] != "duplicate_suppressed"]
    assert repairs, "the clip's failures must call for repairs"
    by_frame = {o.frame_index: o for o in outputs}
    for r in repairs:
        shown = by_frame[r["frame"]].track_ids.tolist()
        assert r["new_track"] in shown, r
        assert r["old_track"] != r["new_track"]


def test_a_finished_clip_carries_how_identities_were_decided_and_the_time_spent():
    _, gallery = _track(20, identities="gallery")
    assert gallery.identities == {"engine": "gallery"}
    assert set(gallery.timing) == {"embed", "associate"} and gallery.timing["associate"] > 0


@pytest.mark.slow
def test_the_offline_engine_says_how_it_decided():
    _, offline = _track(identities="offline")
    assert offline.identities["engine"] == "offline"
    assert offline.identities["num_identities"] >= 1


def test_old_option_names_are_one_line_errors_naming_the_new_key():
    with pytest.raises(ConfigError, match=r"tracker.mode: replaced by tracker.identities"):
        load_config(None, {"tracker.mode": "offline"})
    with pytest.raises(ConfigError, match=r"online_identity_model: replaced by "
                                          r"tracker.identities: model"):
        load_config(None, {"tracker.online_identity_model": True})
    with pytest.raises(ConfigError, match=r"tracker.identities: .*expected one of gallery, "
                                          r"model, offline"):
        load_config(None, {"tracker.identities": "oracle"})


def test_a_new_engine_is_one_class_and_one_registration():
    class SourceIds(IdentityResolver):
        """Shows the mask source's own ids (a stand-in engine)."""

        def observe(self, entry, proposed, hints):
            shown = entry.source_ids.copy()
            self.repair_log.record(entry, shown)
            return shown

    RESOLVERS.register("source-ids", SourceIds)
    try:
        outputs, finished = _track(20, identities="source-ids")
        clip = _clip()
        for out, given in zip(outputs, clip.inputs[:20], strict=True):
            kept = out.track_ids >= 0
            assert np.array_equal(out.track_ids[kept], given.source_ids[kept])
        assert finished.identities == {}
    finally:
        RESOLVERS._entries.pop("source-ids")


def test_from_config_on_a_subclass_refuses_a_file_of_another_kind(tmp_path):
    path = tmp_path / "iou.yaml"
    path.write_text("tracker:\n  type: iou\n")
    assert type(Tracker.from_config(path)).__name__ == "IouTracker"
    with pytest.raises(ConfigError, match=r"builds a IouTracker, not a ReidTracker"):
        ReidTracker.from_config(path)
