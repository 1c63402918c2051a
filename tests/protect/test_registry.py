"""The recognizer registry: every spec is complete and consistent, one distance serves the
judges, the galleries and the attack, and every registered recognizer works in the attack
through its own alignment, as its judge sees it."""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import cli
from fgsm_jax.data import images
from fgsm_jax.models import dlib_resnet, mobileface
from fgsm_jax.protect import attack, evaluate, photo, recognizer, registry

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_every_spec_is_complete_and_consistent():
  assert {'dlib', 'mobileface', 'facenet', 'mobilefacenet', 'mfn512'} <= set(registry.NAMES)
  assert set(registry.DEFAULT) <= set(registry.NAMES)
  assert recognizer.RECOGNIZERS == registry.DEFAULT  # --recognizers' default: unchanged
  for name, spec in registry.SPECS.items():
    assert spec.name == name
    assert spec.metric in registry.METRICS and spec.threshold > 0 and spec.dim > 0
    assert spec.judge in registry.JUDGES and spec.alignment.kind in registry.ALIGNMENT_KINDS
    assert callable(spec.apply_fn) and callable(spec.load_params)
    # The unjitted apply (feature dropout runs it inside the attack's own trace).
    assert callable(getattr(spec.apply_fn, '__wrapped__', None)), name
    assert spec.errors and all(issubclass(e, Exception) for e in spec.errors)
    # Its port is tested against the reference runtime the spec names.
    test = re.search(r'\((tests/[^)]+\.py)\)', spec.reference)
    assert test and (REPO / test.group(1)).is_file(), (name, spec.reference)
    hash(spec)  # static: part of the attack's compile key
  assert registry.SPECS['dlib'].judge == 'real_dlib'
  assert registry.SPECS['mobileface'].alignment == registry.ARCFACE_112
  assert registry.SPECS['facenet'].alignment.size == 160
  assert recognizer.THRESHOLDS == {n: s.threshold for n, s in registry.SPECS.items()}


def test_specs_refuse_what_the_attack_or_the_judges_cannot_use():
  spec = registry.SPECS['mobileface']
  with pytest.raises(ValueError, match='metric'):
    dataclasses.replace(spec, metric='manhattan')
  with pytest.raises(ValueError, match='threshold'):
    dataclasses.replace(spec, threshold=0.0)
  with pytest.raises(ValueError, match='reference crop'):
    dataclasses.replace(spec, alignment=registry.DLIB_CHIP)
  with pytest.raises(ValueError, match='template'):
    registry.Alignment('arcface', 112)
  with pytest.raises(ValueError, match='unknown recognizer nope; expected some of dlib'):
    registry.check_names(['dlib', 'nope'])
  with pytest.raises(ValueError, match='none given'):
    registry.check_names([])


def test_every_registered_name_is_accepted_on_the_command_line():
  assert cli.recognizer_list(','.join(registry.NAMES)) == registry.NAMES
  last = registry.NAMES[-1]
  assert cli.recognizer_list(f'{last}, dlib,{last}') == (last, 'dlib')
  with pytest.raises(argparse.ArgumentTypeError, match=last):
    cli.recognizer_list('dlib,arcface')


def test_the_cheapest_check_comes_first():
  assert registry.cheapest(('dlib', 'mobileface')) == 'mobileface'
  assert registry.cheapest(('dlib',)) == 'dlib'
  assert registry.cheapest(registry.NAMES) == min(
      registry.NAMES, key=lambda n: registry.SPECS[n].check_ms)


def test_one_distance_for_judges_galleries_and_the_attack():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 128))
  g = rng.normal(size=(5, 128))
  assert registry.distance(a, b, 'l2') == pytest.approx(np.linalg.norm(a - b), rel=1e-12)
  cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
  assert registry.distance(a, b, 'cosine') == pytest.approx(1 - cos, rel=1e-12)
  assert registry.distance(a, 3 * a, 'cosine') == pytest.approx(0.0, abs=1e-12)
  assert registry.distance(a, -a, 'cosine') == pytest.approx(2.0)
  # Rows against one reference, in NumPy (float64) and in JAX (float32), the same values.
  for metric in registry.METRICS:
    want = [registry.distance(row, b, metric) for row in g]
    np.testing.assert_allclose(registry.distance(g, b, metric), want, rtol=1e-12)
    np.testing.assert_allclose(registry.distance(jnp.asarray(g), jnp.asarray(b), metric),
                               want, rtol=1e-5)
    # The attack's (a finite gradient at 0) and the models' are the same function.
    np.testing.assert_allclose(attack._distance(metric, jnp.asarray(g), jnp.asarray(b)), want,
                               rtol=1e-5)
  np.testing.assert_allclose(mobileface.cosine_distance(g, b),
                             registry.distance(g, b, 'cosine'), rtol=1e-5)
  np.testing.assert_allclose(dlib_resnet.descriptor_distance(g, b),
                             registry.distance(g, b, 'l2'), rtol=1e-5)
  g0 = jax.grad(lambda x: attack._distance('l2', x[None], jnp.asarray(b))[0])(jnp.asarray(b))
  assert np.all(np.isfinite(np.asarray(g0)))
  # The judges and the galleries.
  assert recognizer.distance(a, b, 'dlib') == pytest.approx(np.linalg.norm(a - b), rel=1e-12)
  assert recognizer.distance(a, b, 'mobileface') == pytest.approx(1 - cos, rel=1e-12)
  gallery = evaluate.Gallery(g.astype(np.float32), ['p', 'q', 'p', 'r', 's'], [], [],
                             'mobileface')
  out = evaluate.identify(gallery, b, 'p')
  d = registry.distance(g.astype(np.float32), b, 'cosine')
  assert out['nearest_distance'] == pytest.approx(d.min())
  assert out['own_distance'] == pytest.approx(min(d[0], d[2]))
  assert out['verified'] == (min(d[0], d[2]) < registry.SPECS['mobileface'].threshold)


def test_face_records_keep_descriptors_by_name():
  face = recognizer.FaceRecord(box=(0, 0, 9, 9), landmarks5=np.zeros((5, 2)))
  assert face.descriptor_of('mobileface') is None and face.landmarks68 is None
  more = face.with_descriptors(mobileface=np.ones(3, np.float32))
  assert face.descriptor_of('mobileface') is None  # a copy; the record never changes
  np.testing.assert_array_equal(more.descriptor_of('mobileface'), np.ones(3))
  with pytest.raises(ValueError, match='unknown recognizer'):
    more.descriptor_of('arcface')
  # An alignment that needs the 68 landmarks has no crop without them.
  assert registry.ARCFACE_112.transform(face, (100, 100)) is None


@pytest.fixture(scope='module')
def described(gt_dir):
  rgb = images.load_rgb(gt_dir / 's12' / '03.jpg')
  (face,) = recognizer.describe(rgb, recognizers=registry.NAMES)
  return rgb, face


@pytest.mark.slow
def test_every_recognizer_judges_a_photo_with_its_own_crop(described):
  rgb, face = described
  assert face.landmarks68 is not None and face.landmarks68.shape == (68, 2)
  for name, spec in registry.SPECS.items():
    d = face.descriptor_of(name)
    assert d is not None and d.shape == (spec.dim,) and d.dtype == np.float32, name
    if spec.metric == 'cosine':
      assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5), name
  # Asking for one recognizer gives what asking for all of them gives.
  last = registry.NAMES[-1]
  (alone,) = recognizer.describe(rgb, recognizers=(last,))
  np.testing.assert_array_equal(alone.descriptor_of(last), face.descriptor_of(last))
  assert alone.descriptor_of('dlib') is None


@pytest.mark.slow
@pytest.mark.parametrize('name', registry.NAMES)
def test_each_recognizer_is_attacked_through_its_own_alignment(described, name):
  # On the clean window the attack's crop (the JAX warp) and the port give the judge's own
  # descriptor; a few steps against that recognizer alone then move it.
  rgb, face = described
  rec = registry.load([name])[0]
  alignment = rec.spec.alignment
  chip = registry.DLIB_CHIP.transform(face, rgb.shape[:2])
  transform = alignment.transform(face, rgb.shape[:2])
  crops = [transform] if alignment.kind == 'arcface' else []
  region = photo._window(face.box, chip, crops, rgb.shape[:2], 0.3, 0.2)
  t, l = region.top, region.left
  h, w = region.size
  window = jnp.asarray(rgb[t:t + h, l:l + w] / 255.0, jnp.float32)
  budget = jnp.asarray(np.asarray(photo.faces_lib.feather_mask(region)) * 6 / 255.0,
                       jnp.float32)
  member = (photo._surrogate(rec, transform, 1.0),)
  geom = (photo._geometry(rec, transform, region),)
  ref = (jnp.asarray(face.descriptor_of(name)),)
  config = attack.AttackConfig(step=0.3, eot_samples=1, jitter_px=0.0, jitter_deg=0.0,
                               jitter_scale=0.0)
  _, d0 = attack.protect_window(member, (rec.params,), window, window, budget, geom, ref,
                                jax.random.key(0), 0, config=config)
  _, d = attack.protect_window(member, (rec.params,), window, window, budget, geom, ref,
                               jax.random.key(0), 4, config=config)
  # dlib: the port's chip against dlib's own descriptor (0.0x); the others: the warp
  # against the NumPy reference crop through the same port (~1e-6).
  assert float(d0[0]) / rec.spec.threshold < 0.1, float(d0[0])
  assert float(d[0]) > float(d0[0]) + 0.2 * rec.spec.threshold, (float(d0[0]), float(d[0]))
  # The intermediate-layer loss reads the middle of each network.
  _, feat = attack._describe(member[0], rec.params,
                             jnp.zeros((1, alignment.size, alignment.size, 3)),
                             jax.random.key(0), dataclasses.replace(config, feature_weight=1.0))
  assert feat is not None and feat.ndim == 4
  assert alignment.size / 12 <= feat.shape[1] <= alignment.size / 6, feat.shape
