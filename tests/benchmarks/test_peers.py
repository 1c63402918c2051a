"""fgsm_jax.benchmarks.peers: the TF and PyTorch copies of the original CNN carry the same
weights (same logits as Flax) and their FGSM/PGD give fgsm_jax's adversarial images."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.attacks import fgsm, pgd
from fgsm_jax.benchmarks import peers
from fgsm_jax.models import ApplyFn, OriginalCNN

SIZE, CLASSES, EPS = 48, 5, 4 / 255   # 48 -> 24 -> 8 -> 2: a 2 x 2 x 32 flatten


@pytest.fixture(scope="module")
def setup():
  module = OriginalCNN(num_classes=CLASSES)
  params = module.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))["params"]
  rng = np.random.default_rng(0)
  images = rng.random((3, SIZE, SIZE, 3), np.float32)
  labels = np.array([0, 3, 4], np.int32)
  return ApplyFn(module), params, images, labels


def test_feature_map_size():
  assert peers.feature_map_size(160) == 8 and peers.feature_map_size(SIZE) == 2


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
    assert match["frac_pixels_differ"] <= 1e-3, match


def test_torch_model_has_the_same_logits_and_attacks(setup):
  torch = pytest.importorskip("torch")
  apply_fn, params, images, labels = setup
  model = peers.torch_model(params, CLASSES, SIZE)
  with torch.no_grad():
    logits = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  np.testing.assert_allclose(logits, np.asarray(apply_fn(params, images)), atol=2e-5)

  ours = {"fgsm": np.asarray(fgsm(apply_fn, params, images, labels, EPS)),
          "pgd": np.asarray(pgd(apply_fn, params, images, labels, jax.random.key(0), EPS,
                                steps=3, step_size=EPS / 2, random_init=False))}
  for attack in ("fgsm", "pgd"):
    peer = peers.TorchPeer(model, attack, EPS, steps=3, alpha=EPS / 2)
    theirs = peer.to_numpy(peer.run(peer.prepare(images, labels)))
    match = peers.compare_adversarials(ours[attack], theirs, EPS)
    assert match["frac_pixels_differ"] <= 1e-3, (attack, match)


def test_hand_written_torch_attacks_equal_torchattacks(setup):
  torch = pytest.importorskip("torch")
  pytest.importorskip("torchattacks")
  _, params, images, labels = setup
  model = peers.torch_model(params, CLASSES, SIZE)
  x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  y = torch.from_numpy(labels.astype(np.int64))
  for attack, hand in (("fgsm", peers._HandFGSM(model, EPS)),
                       ("pgd", peers._HandPGD(model, EPS, EPS / 2, 3))):
    library, description = peers.torch_attack(model, attack, EPS, steps=3, alpha=EPS / 2)
    assert description.startswith("torchattacks")
    np.testing.assert_array_equal(hand(x, y).numpy(), library(x, y).numpy())


def test_compare_adversarials_counts_pixels_beyond_a_tenth_of_eps():
  a = np.zeros((1, 2, 2, 1), np.float32)
  b = a.copy()
  b[0, 0, 0, 0] = 2 * EPS        # a sign flip
  b[0, 1, 1, 0] = EPS / 20       # float noise
  match = peers.compare_adversarials(a, b, EPS)
  assert match["frac_pixels_differ"] == 0.25
  assert match["max_abs_diff"] == pytest.approx(2 * EPS)
  with pytest.raises(ValueError, match="shape"):
    peers.compare_adversarials(a, b[:, :1], EPS)


def test_unknown_peer_and_attack_raise(setup):
  _, params, _, _ = setup
  with pytest.raises(ValueError, match="unknown peer"):
    peers.build_peers(["jaxlib"], "fgsm", params, CLASSES, EPS, image_size=SIZE)
  # TF has FGSM only (as in the notebook): no peer, no error.
  assert peers.build_peers(["tf"], "pgd", params, CLASSES, EPS, image_size=SIZE) == []
