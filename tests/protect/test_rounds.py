"""The rounds of `photo.protect_photo`, one step at a time: a face's state at the start,
`attack_face`, `check_faces` and `decide`."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fgsm_jax.data import images
from fgsm_jax.protect import attack, photo, recognizer, registry
from fgsm_jax.protect.presets import Preset

BOTH = ('dlib', 'mobileface')
PRESET = Preset(name='t', summary='t', eps=6.0, steps=2, rounds=3, extra_steps=1, target=1.5,
                eps_ladder=(7.0, 8.0), ladder_target=1.0, attack=attack.AttackConfig())


@pytest.fixture(scope='module')
def photo_and_face(gt_dir):
  rgb = images.load_rgb(gt_dir / 's12' / '03.jpg')
  (face,) = recognizer.describe(rgb, recognizers=BOTH)
  return rgb, face


def _state(**changes) -> photo.FaceState:
  face = recognizer.FaceRecord(box=(0, 0, 9, 9), landmarks5=np.zeros((5, 2)))
  region = photo.faces_lib.Region(top=0, left=0, inner=(0.0, 0.0, 9.0, 9.0), feather=1.0,
                                  size=(10, 10))
  return dataclasses.replace(photo.FaceState(clean=face, region=region, start={}, aligned={},
                                             refs=()), **changes)


def test_decide_goes_on_climbs_and_stops():
  # Under the target (1.5): another round; under the ladder's target (1.0) too: a rung up.
  on = photo.decide(_state(ratios={'dlib': 1.2, 'mobileface': 3.0}), PRESET, 0)
  assert on.todo and on.level == 0
  climb = photo.decide(_state(ratios={'dlib': 2.0, 'mobileface': 0.4}), PRESET, 0)
  assert climb.todo and climb.level == 1
  assert photo.decide(dataclasses.replace(climb, level=1), PRESET, 1).level == 2
  # After the last round nothing climbs; past the target every attacked one: stop.
  assert photo.decide(_state(ratios={'dlib': 0.4}), PRESET, 2).level == 0
  done = photo.decide(_state(ratios={'dlib': 1.6, 'mobileface': 2.0}), PRESET, 0)
  assert not done.todo and done.level == 0
  # Not found, or not computed by a lazy check: counts as neither.
  assert not photo.decide(_state(ratios={'dlib': None}), PRESET, 0).todo
  # Without a ladder, no rung; ladder_target 0 means the target itself.
  flat = dataclasses.replace(PRESET, eps_ladder=(), ladder_target=0.0)
  assert photo.decide(_state(ratios={'dlib': 0.1}), flat, 0).level == 0
  same = dataclasses.replace(PRESET, ladder_target=0.0)
  assert photo.decide(_state(ratios={'dlib': 1.4}), same, 0).level == 1


def test_start_face_builds_the_window_around_every_crop_seen(photo_and_face):
  rgb, face = photo_and_face
  hw = rgb.shape[:2]
  dlib_only = photo.start_face(face, [], hw, ('dlib',), ('dlib',), PRESET)
  assert set(dlib_only.aligned) == {registry.DLIB_CHIP} and dlib_only.todo
  assert len(dlib_only.refs) == 1 and dlib_only.refs[0].shape == (128,)
  both = photo.start_face(face, [], hw, ('dlib',), BOTH, PRESET)  # MobileFace judges only
  assert set(both.aligned) == {registry.DLIB_CHIP, registry.ARCFACE_112}
  assert len(both.refs) == 1  # references of the attacked recognizers only
  assert both.aligned == both.start
  # The judge's crop is in the window (its geometry is defined there).
  registry.ARCFACE_112.geometry(both.aligned[registry.ARCFACE_112], both.region)
  # A face whose attacked recognizer's crop cannot be placed is not attacked.
  bare = dataclasses.replace(face, landmarks68=None)
  assert photo.start_face(bare, [], hw, BOTH, BOTH, PRESET) is None
  assert photo.start_face(bare, [], hw, ('dlib',), BOTH, PRESET) is not None
  # The same person's other faces give more reference rows.
  other = face.with_descriptors(dlib=face.descriptor_of('dlib') + 0.01)
  with_person = photo.start_face(face, [other], hw, ('dlib',), ('dlib',), PRESET)
  assert with_person.others == (other,)
  assert with_person.refs[0].shape == (photo.PERSON_REFS, 128)


def test_realign_follows_the_landmarks_found_and_keeps_the_rest(photo_and_face):
  rgb, face = photo_and_face
  hw = rgb.shape[:2]
  state = photo.start_face(face, [], hw, BOTH, BOTH, PRESET)
  assert photo.realign(state, hw) == state.aligned  # nothing found yet
  moved = dataclasses.replace(face, landmarks5=face.landmarks5 + 1.0, landmarks68=None)
  out = photo.realign(dataclasses.replace(state, found=moved), hw)
  assert out[registry.DLIB_CHIP] == registry.DLIB_CHIP.transform(moved, hw)
  assert out[registry.DLIB_CHIP] != state.aligned[registry.DLIB_CHIP]
  # The found face has no 68 landmarks (a lazy check by dlib alone): ArcFace's crop stays.
  assert out[registry.ARCFACE_112] == state.aligned[registry.ARCFACE_112]


def test_attack_face_attacks_the_window_and_falls_back_to_the_first_alignment(
    photo_and_face, monkeypatch):
  rgb, face = photo_and_face
  hw = rgb.shape[:2]
  recs = [registry.Recognizer(n, None) for n in BOTH]
  state = photo.start_face(face, [], hw, BOTH, BOTH, PRESET)
  calls = []

  def fake_window(members, params, window0, start, budget, geoms, refs, key, steps, **kw):
    calls.append(dict(members=members, shape=window0.shape, steps=int(steps)))
    return start + 1 / 255, np.array([0.25, 0.5], np.float32)

  monkeypatch.setattr(photo.attack_lib, 'protect_window', fake_window)
  original = rgb.astype(np.float32) / 255
  budget = np.zeros(rgb.shape, np.float32)
  after, window = photo.attack_face(state, original, original.copy(), budget, recs, PRESET,
                                    jax.random.key(0), 3)
  h, w = state.region.size
  assert window.shape == (h, w, 3)
  np.testing.assert_allclose(window, original[state.slices] + 1 / 255, atol=1e-6)
  side = photo.bucket_side(h, w)
  assert calls[0]['shape'] == (side, side, 3) and calls[0]['steps'] == 3
  assert [m.name for m in calls[0]['members']] == list(BOTH)
  assert [m.weight for m in calls[0]['members']] == [PRESET.weight(n) for n in BOTH]
  assert after.rounds == 1 and after.model_distances == {'dlib': 0.25, 'mobileface': 0.5}
  # A face found far away (its crops leave the window): back to the clean photo's alignment.
  far = dataclasses.replace(face, landmarks5=face.landmarks5 + 150.0, landmarks68=None)
  assert photo.realign(dataclasses.replace(after, found=far), hw) != state.start
  lost, _ = photo.attack_face(dataclasses.replace(after, found=far), original, original,
                              budget, recs, PRESET, jax.random.key(1), 1)
  assert lost.aligned == state.start and lost.rounds == 2


def test_check_faces_asks_the_cheapest_first_and_completes_when_it_must(photo_and_face):
  rgb, face = photo_and_face
  hw = rgb.shape[:2]
  state = photo.start_face(face, [], hw, BOTH, BOTH, PRESET)
  mf = registry.SPECS['mobileface'].threshold
  asked = []

  def checker(shift_mf):
    def check(img, names, known):
      asked.append(tuple(names))
      if known is not None:
        return known
      moved = face.with_descriptors(mobileface=face.descriptor_of('mobileface') + shift_mf)
      return [recognizer.FaceRecord(moved.box, moved.landmarks5,
                                    {n: moved.descriptor_of(n) for n in names},
                                    moved.landmarks68)]
    return check

  # MobileFace unmoved (under the target): it alone decides, dlib is not computed.
  (s,) = photo.check_faces(rgb, [state], checker(0.0), attacked=BOTH, seeing=BOTH,
                           preset=PRESET, last=False)
  assert asked == [('mobileface',)]
  assert s.distances['mobileface'] == pytest.approx(0.0, abs=1e-6)
  assert s.distances['dlib'] is None and s.ratios['dlib'] is None
  assert s.found is not None
  # MobileFace moved far: the others may still hold the face, so the check completes.
  asked.clear()
  far = -2 * face.descriptor_of('mobileface')
  (s,) = photo.check_faces(rgb, [state], checker(far), attacked=BOTH, seeing=BOTH,
                           preset=PRESET, last=False)
  assert asked == [('mobileface',), BOTH]
  assert s.ratios['mobileface'] == pytest.approx(2.0 / mf)
  # After the last round: every recognizer seen, at once.
  asked.clear()
  photo.check_faces(rgb, [state], checker(0.0), attacked=BOTH, seeing=BOTH, preset=PRESET,
                    last=True)
  assert asked == [BOTH]
  # A face no longer found: no distances, no ratios, nothing to re-align on.
  (s,) = photo.check_faces(rgb, [state], lambda img, names, known: [], attacked=BOTH,
                           seeing=BOTH, preset=PRESET, last=True)
  assert s.found is None and s.distances == {'dlib': None, 'mobileface': None}
  assert not photo.decide(s, PRESET, 0).todo
