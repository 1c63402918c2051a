"""Training: a step lowers the loss, runs are reproducible from the seed, checkpoints round-trip."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import train
from fgsm_jax.data import pipeline as data_pipeline

CONFIG = train.TrainConfig(num_classes=3, image_size=32, epochs=2, batch_size=4, seed=0)


def _tiny_data(n=12, size=32, seed=0):
  rng = np.random.default_rng(seed)
  labels = (np.arange(n) % 3).astype(np.int32)
  # Separable classes: each class brightens one colour channel.
  images = rng.uniform(0, 0.5, (n, size, size, 3)).astype(np.float32)
  images[np.arange(n), :, :, labels] += 0.5
  return images, labels


@pytest.mark.slow
def test_train_step_lowers_loss_on_a_tiny_batch():
  images, labels = _tiny_data()
  state = train.create_train_state(jax.random.key(0), CONFIG)
  batch = {'image': images[:4], 'label': labels[:4]}
  before = train.eval_step(state.apply_fn, state.params, batch)['loss']
  for _ in range(5):
    state, _ = train.train_step(state, batch)
  after = train.eval_step(state.apply_fn, state.params, batch)['loss']
  assert float(after) < float(before)


@pytest.mark.slow
def test_padding_is_masked_out_of_the_metrics():
  images, labels = _tiny_data(n=5)
  state = train.create_train_state(jax.random.key(0), CONFIG)
  batches = list(data_pipeline.batches(images, labels, 4, pad=True))
  assert [b['image'].shape[0] for b in batches] == [4, 4]
  assert batches[1]['mask'].tolist() == [1.0, 0.0, 0.0, 0.0]
  padded = train.eval_step(state.apply_fn, state.params, batches[1])
  alone = train.eval_step(state.apply_fn, state.params,
                          {'image': images[4:], 'label': labels[4:]})
  np.testing.assert_allclose(padded['loss'], alone['loss'], rtol=1e-5)
  assert float(padded['count']) == 1.0


@pytest.mark.slow
def test_training_is_reproducible_from_the_seed():
  images, labels = _tiny_data()
  a, _ = train.train(CONFIG, images, labels, log=lambda _: None)
  b, _ = train.train(CONFIG, images, labels, log=lambda _: None)
  c, _ = train.train(train.TrainConfig(**{**CONFIG.__dict__, 'seed': 1}), images, labels,
                     log=lambda _: None)
  same = jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a.params, b.params)
  assert all(jax.tree.leaves(same))
  assert not jnp.array_equal(a.params['Dense_1']['kernel'], c.params['Dense_1']['kernel'])


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path):
  images, labels = _tiny_data()
  state, _ = train.train(CONFIG, images, labels, log=lambda _: None)
  train.save_checkpoint(tmp_path, state.params, CONFIG, {'test_accuracy': 0.5})
  apply_fn, params, config = train.load_checkpoint(tmp_path)
  assert config == CONFIG
  np.testing.assert_array_equal(apply_fn(params, images), state.apply_fn(state.params, images))
  saved = json.loads((tmp_path / 'config.json').read_text())
  assert saved['metrics'] == {'test_accuracy': 0.5}
  assert not list(tmp_path.glob('.*.tmp'))  # atomic writes leave no temporaries


def test_load_checkpoint_names_the_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match='config.json'):
    train.load_checkpoint(tmp_path)


def test_unknown_model_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown model 'nope'"):
    train.create_train_state(jax.random.key(0), train.TrainConfig(model='nope'))


@pytest.mark.slow
def test_augmentation_is_keyed_and_keeps_shape_and_range():
  images, _ = _tiny_data(n=4)
  a = train.augment_images(jax.random.key(0), jnp.asarray(images), True, 4, 0.2)
  b = train.augment_images(jax.random.key(0), jnp.asarray(images), True, 4, 0.2)
  c = train.augment_images(jax.random.key(1), jnp.asarray(images), True, 4, 0.2)
  assert a.shape == images.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # With every augmentation off the images pass through unchanged.
  np.testing.assert_array_equal(
      train.augment_images(jax.random.key(0), jnp.asarray(images), False, 0, 0.0), images)


def _largest_change(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a),
                                                            jax.tree.leaves(b)))


def _one_more_step_changes(state, images, labels) -> float:
  before = jax.tree.map(jnp.copy, state.params)   # train_step donates the state
  after, _ = train.train_step(state, {'image': images[:4], 'label': labels[:4]})
  return _largest_change(before, after.params)


@pytest.mark.slow
def test_cosine_schedule_flips_and_shifts_are_applied():
  images, labels = _tiny_data()

  def run(**changes):
    config = train.TrainConfig(**{**CONFIG.__dict__, **changes})
    return train.train(config, images, labels, log=lambda _: None)

  state, history = run(cosine_decay=True, flip=True, max_shift=2)
  assert len(history) == CONFIG.epochs and int(state.step) == CONFIG.epochs * 3
  # The cosine schedule reaches 0 at the end of training: one more step changes nothing
  # (measured 0.0), where the constant rate still moves a weight by ~lr (measured 1.0e-3).
  assert _one_more_step_changes(state, images, labels) <= 1e-7
  constant, _ = run(flip=True, max_shift=2)
  assert _one_more_step_changes(constant, images, labels) > 1e-4
  # Flips and shifts each change what is trained on, hence the weights, from the same seed
  # (measured: largest weight difference 5.7e-3 with flips, 6.0e-3 with shifts).
  plain, _ = run(cosine_decay=True)
  for augmentation in ({'flip': True}, {'max_shift': 2}):
    augmented, _ = run(cosine_decay=True, **augmentation)
    assert _largest_change(plain.params, augmented.params) > 1e-3, augmentation


@pytest.fixture(scope='module')
def saved_checkpoint(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('saved')
  state = train.create_train_state(jax.random.key(0), CONFIG)
  train.save_checkpoint(workdir, state.params, CONFIG)
  return workdir


def _copy(saved, tmp_path):
  import shutil
  return pathlib.Path(shutil.copytree(saved, tmp_path / 'copy'))


def _one_line_error(workdir, match):
  with pytest.raises(train.CheckpointError, match=match) as info:
    train.load_checkpoint(workdir)
  message = str(info.value)
  assert '\n' not in message and str(workdir) in message, message
  return message


@pytest.mark.parametrize('what', ['every file', 'the array data'])
def test_corrupt_checkpoint_is_a_one_line_error(saved_checkpoint, tmp_path, what):
  workdir = _copy(saved_checkpoint, tmp_path)
  files = [p for p in (workdir / 'checkpoint').rglob('*') if p.is_file()]
  if what == 'the array data':   # orbax's metadata intact, the stored arrays overwritten
    files = [p for p in files if p.parent.name == 'd']
  assert files
  for path in files:
    path.write_bytes(b'not a checkpoint')
  _one_line_error(workdir, 'cannot read the checkpoint')


def test_checkpoint_of_another_model_is_a_one_line_error(saved_checkpoint, tmp_path):
  # Saved for 3 classes, described as 7: orbax restored the 3-class arrays silently.
  workdir = _copy(saved_checkpoint, tmp_path)
  meta = json.loads((workdir / 'config.json').read_text())
  meta['config']['num_classes'] = 7
  (workdir / 'config.json').write_text(json.dumps(meta))
  message = _one_line_error(workdir, 'do not fit the model')
  assert '(3,)' in message and '(7,)' in message


def test_unreadable_checkpoint_config_is_a_one_line_error(saved_checkpoint, tmp_path):
  workdir = _copy(saved_checkpoint, tmp_path)
  (workdir / 'config.json').write_text('{not json')
  _one_line_error(workdir, 'not a usable checkpoint config')
