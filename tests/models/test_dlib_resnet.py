"""The Flax port of dlib's face-recognition ResNet against real dlib, on real GT photos."""
from __future__ import annotations

import pathlib

import dlib
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax.models.dlib_files import dlib_model_paths
from fgsm_jax.models.dlib_resnet import (
    DLIB_MEAN_RGB,
    RESNET_UNITS,
    SAME_PERSON_THRESHOLD,
    DlibModelError,
    DlibResNet,
    descriptor_distance,
    dlib_resnet_apply,
    load_dlib_resnet,
)

# Two photos each of 12 people (24 chips): enough for the exactness check (>= 20 chips)
# and for same-person / different-person pairs.
PEOPLE = range(1, 13)
SHOTS = (1, 8)


@pytest.fixture(scope='module')
def params():
  return load_dlib_resnet()


@pytest.fixture(scope='module')
def gt_chips(gt_dir: pathlib.Path):
  """dlib-aligned 150x150 chips of GT photos and real dlib's descriptors of them.

  Returns (chips uint8 N x 150 x 150 x 3, dlib descriptors N x 128, person ids N).
  """
  paths = dlib_model_paths()
  detector = dlib.get_frontal_face_detector()
  predictor = dlib.shape_predictor(str(paths.shape_predictor_5))
  recognizer = dlib.face_recognition_model_v1(str(paths.resnet))
  chips, people = [], []
  for person in PEOPLE:
    for shot in SHOTS:
      img = np.asarray(Image.open(gt_dir / f's{person:02d}' / f'{shot:02d}.jpg').convert('RGB'))
      faces = detector(img, 0)
      if not faces:
        continue
      shape = predictor(img, faces[0])
      chips.append(dlib.get_face_chip(img, shape, size=150, padding=0.25))
      people.append(person)
  assert len(chips) >= 20, f'dlib found faces in only {len(chips)} GT photos'
  refs = np.array(recognizer.compute_face_descriptor(chips), dtype=np.float32)
  return np.stack(chips), refs, np.array(people)


@pytest.fixture(scope='module')
def ours(params, gt_chips):
  chips, _, _ = gt_chips
  return np.asarray(dlib_resnet_apply(params, jnp.asarray(chips, jnp.float32) / 255.0))


def test_model_paths_exist():
  paths = dlib_model_paths()
  assert paths.resnet.is_file() and paths.shape_predictor_5.is_file()


def test_params_match_module_structure(params):
  init = jax.eval_shape(DlibResNet().init, jax.random.key(0), jnp.zeros((1, 150, 150, 3)))
  shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
  assert shapes(init['params']) == shapes(params)
  np.testing.assert_allclose(params['mean_rgb'], [122.782, 117.001, 104.298], atol=1e-4)


@pytest.mark.slow
def test_descriptors_equal_dlib(ours, gt_chips):
  _, refs, _ = gt_chips
  assert ours.shape == refs.shape == (len(refs), 128)
  err = np.linalg.norm(ours - refs, axis=1)
  assert err.max() < 1e-4, f'L2 to dlib per chip: {err}'


@pytest.mark.slow
def test_same_person_close_different_people_far(ours, gt_chips):
  _, _, people = gt_chips
  dist = np.asarray(descriptor_distance(ours[:, None], ours[None]))
  same = people[:, None] == people[None]
  off_diagonal = ~np.eye(len(people), dtype=bool)
  assert (dist[same & off_diagonal] < SAME_PERSON_THRESHOLD).all()
  assert (dist[~same] > SAME_PERSON_THRESHOLD).mean() > 0.95


@pytest.mark.slow
def test_gradient_step_moves_descriptor(params, gt_chips, ours):
  # The attacks differentiate the distance to a target descriptor w.r.t. the pixels.
  chips, _, _ = gt_chips
  x = jnp.asarray(chips[:2], jnp.float32) / 255.0
  target = jnp.asarray(ours[2:4])

  def loss(x):
    return jnp.sum((dlib_resnet_apply(params, x) - target) ** 2)

  value, grad = jax.value_and_grad(loss)(x)
  assert grad.shape == x.shape and bool(jnp.isfinite(grad).all())
  stepped = jnp.clip(x - 2.0 / 255.0 * jnp.sign(grad), 0.0, 1.0)
  assert float(loss(stepped)) < float(value)


def _reference_descriptors(params, chips):
  """The same network from plain JAX / Flax ops (lax convolutions, nn.max_pool, jnp.pad)."""
  def conv(x, p, stride):
    pad = 1 if stride == 1 else 0
    y = jax.lax.conv_general_dilated(x, p['kernel'], (stride, stride), [(pad, pad)] * 2,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + p['bias']

  def affine(x, p):
    return x * p['scale'] + p['bias']

  def add_prev(a, b):
    shape = tuple(max(s, t) for s, t in zip(a.shape, b.shape))
    return sum(jnp.pad(v, [(0, s - t) for s, t in zip(shape, v.shape)]) for v in (a, b))

  x = (chips * 255.0 - jnp.asarray(DLIB_MEAN_RGB)) / 256.0
  x = jax.nn.relu(affine(conv(x, params['stem_conv'], 2), params['stem_affine']))
  x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')
  for u, (_, down) in enumerate(RESNET_UNITS):
    p = params[f'unit{u}']
    y = jax.nn.relu(affine(conv(x, p['conv1'], 2 if down else 1), p['affine1']))
    y = affine(conv(y, p['conv2'], 1), p['affine2'])
    shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2)) if down else x
    x = jax.nn.relu(add_prev(y, shortcut))
  return jnp.mean(x, axis=(1, 2)) @ params['fc']['kernel']


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['fast', 'plain'])
def test_outputs_and_input_gradient_equal_plain_jax(params, gt_chips, ours, variant):
  # Both variants -- the fast forms (ops.Conv, ops.max_pool: dlib_resnet_apply) and the plain
  # module DlibResNet() -- against a hand-written plain JAX network, on real chips (where
  # ReLUs and pooling windows see realistic values) in a batch of 3.
  chips, _, _ = gt_chips
  x = jnp.asarray(chips[:3], jnp.float32) / 255.0
  target = jnp.asarray(ours[3:6])
  apply = (dlib_resnet_apply if variant == 'fast'
           else jax.jit(lambda p, z: DlibResNet().apply({'params': p}, z)))
  np.testing.assert_allclose(apply(params, x), _reference_descriptors(params, x), rtol=0,
                             atol=2e-5)

  def loss(f, x):
    return jnp.sum((f(x) - target) ** 2)

  g = jax.jit(jax.grad(lambda x: loss(lambda z: apply(params, z), x)))(x)
  g_ref = jax.jit(jax.grad(lambda x: loss(lambda z: _reference_descriptors(params, z), x)))(x)
  scale = float(jnp.abs(g_ref).max())
  assert scale > 0
  np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-4 * scale)


def test_descriptor_distance():
  a = np.array([[0.0, 3.0], [1.0, 1.0]], np.float32)
  b = np.array([4.0, 0.0], np.float32)
  np.testing.assert_allclose(descriptor_distance(a, b), [5.0, np.sqrt(10.0)], rtol=1e-6)


def test_rejects_wrong_chip_shape(params):
  with pytest.raises(ValueError, match='150 x 150 x 3'):
    DlibResNet().apply({'params': params}, jnp.zeros((1, 112, 112, 3)))
  with pytest.raises(ValueError, match=r'\[0, 1\]'):
    DlibResNet().apply({'params': params}, jnp.zeros((1, 150, 150, 3), jnp.uint8))


def test_missing_file_is_one_line_naming_it(tmp_path):
  path = tmp_path / 'absent.dat'
  with pytest.raises(DlibModelError) as info:
    load_dlib_resnet(path)
  assert str(path) in str(info.value) and '\n' not in str(info.value)


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'wrong_model'])
def test_corrupt_file_is_one_line_naming_it(tmp_path, damage):
  src = dlib_model_paths()
  data = {
      'truncate': lambda: src.resnet.read_bytes()[:1_000_000],
      'garbage': lambda: b'\x00not a dlib model' * 10,
      'wrong_model': lambda: src.shape_predictor_5.read_bytes(),
  }[damage]()
  path = tmp_path / 'bad.dat'
  path.write_bytes(data)
  with pytest.raises(DlibModelError) as info:
    load_dlib_resnet(path)
  assert str(path) in str(info.value) and '\n' not in str(info.value)
