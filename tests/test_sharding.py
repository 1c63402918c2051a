"""fgsm_jax.sharding on 8 CPU devices: sharded attacks and training equal the single-device
ones, the batch really is split 8 ways, and batches not divisible by 8 work.

XLA makes 8 CPU devices only when ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` is
set before jax is imported, and the main test process has imported jax long before. So
``test_sharding_on_8_cpu_devices`` runs this file again in a fresh Python with the flag set
(``FGSM_JAX_SHARDING_CHILD=1``); there the tests below run, and in the parent they are
skipped (they need 8 devices). A plain ``pytest tests`` (scripts/test.sh, .ci/run) therefore
runs everything.
"""
from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import sys
from xml.etree import ElementTree

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax import processes, sharding, train
from fgsm_jax.attacks import fgsm, pgd
from fgsm_jax.models import ApplyFn, fast_original_cnn

# Slow, left out of scripts/test.sh --quick: subprocesses (8 CPU devices, one pinned process
# per core).
pytestmark = pytest.mark.slow

CHILD = os.environ.get('FGSM_JAX_SHARDING_CHILD') == '1'
DEVICES = 8
needs_8 = pytest.mark.skipif(
    jax.device_count() < DEVICES,
    reason='needs 8 devices: run by test_sharding_on_8_cpu_devices in a subprocess')

SIZE, CLASSES, EPS = 48, 5, 4 / 255


def test_sharding_on_8_cpu_devices(tmp_path):
  if CHILD:
    pytest.skip('this is the child run')
  env = dict(os.environ, FGSM_JAX_SHARDING_CHILD='1', JAX_PLATFORMS='cpu',
             XLA_FLAGS=(os.environ.get('XLA_FLAGS', '') +
                        f' --xla_force_host_platform_device_count={DEVICES}').strip())
  report = tmp_path / 'child.xml'
  result = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-x', '-p', 'no:cacheprovider',
       f'--junitxml={report}', str(pathlib.Path(__file__))],
      env=env, capture_output=True, text=True, timeout=1800,
      cwd=pathlib.Path(__file__).resolve().parents[1])
  tail = (result.stdout + result.stderr)[-4000:]
  assert result.returncode == 0, tail
  # Every test of the child must have run and passed; the only skips allowed are the tests
  # that run in the parent ("this is the child run"). A child without 8 devices skips the
  # needs_8 tests, and "N passed, M skipped" alone would not notice.
  suite = ElementTree.parse(report).getroot()
  suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
  skips = {case.get('name'): case.find('skipped').get('message', '')
           for case in suite.iter('testcase') if case.find('skipped') is not None}
  wrong = {name: why for name, why in skips.items() if 'this is the child run' not in why}
  assert not wrong, (wrong, tail)
  assert 'test_sharding_on_8_cpu_devices' in skips, tail
  ran = int(suite.get('tests')) - len(skips)
  assert int(suite.get('failures')) == int(suite.get('errors')) == 0 and ran >= 9, (ran, tail)


@pytest.fixture(scope='module')
def model():
  module = fast_original_cnn(CLASSES)
  params = module.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))['params']
  return ApplyFn(module), params


def _data(n, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n, SIZE, SIZE, 3), np.float32),
          rng.integers(0, CLASSES, n).astype(np.int32))


def test_pad_batch_repeats_the_last_example_and_masks_it():
  batch = {'image': np.arange(5 * 2).reshape(5, 2).astype(np.float32), 'label': np.arange(5)}
  padded, n = sharding.pad_batch(batch, 4, mask_key='mask')
  assert n == 5 and padded['image'].shape == (8, 2)
  np.testing.assert_array_equal(padded['label'], [0, 1, 2, 3, 4, 4, 4, 4])
  np.testing.assert_array_equal(padded['mask'], [1, 1, 1, 1, 1, 0, 0, 0])
  same, n = sharding.pad_batch(batch, 5)
  assert n == 5 and same['image'].shape == (5, 2) and 'mask' not in same
  with pytest.raises(ValueError, match='same leading'):
    sharding.pad_batch({'a': np.zeros(3), 'b': np.zeros(4)}, 2)


@needs_8
def test_shard_batch_splits_the_batch_over_8_devices():
  mesh = sharding.batch_mesh()
  assert mesh.shape == {'batch': DEVICES}
  images, labels = _data(16)
  placed = sharding.shard_batch({'image': images, 'label': labels}, mesh)
  shards = placed['image'].addressable_shards
  assert len(shards) == DEVICES
  assert len({s.device for s in shards}) == DEVICES
  assert all(s.data.shape == (2, SIZE, SIZE, 3) for s in shards)
  np.testing.assert_array_equal(np.concatenate([np.asarray(s.data) for s in shards]), images)
  with pytest.raises(ValueError, match='pad it first'):
    sharding.shard_batch(images[:13], mesh)


@needs_8
def test_replicate_puts_the_whole_tree_on_every_device(model):
  _, params = model
  mesh = sharding.batch_mesh()
  placed = sharding.replicate(params, mesh)
  for want, got in zip(jax.tree.leaves(params), jax.tree.leaves(placed)):
    assert got.sharding.is_fully_replicated
    assert {s.device for s in got.addressable_shards} == set(jax.devices())
    for shard in got.addressable_shards:
      np.testing.assert_array_equal(np.asarray(shard.data), np.asarray(want))
  # Placed parameters give the same attack as unplaced ones.
  images, labels = _data(16)
  attack = sharding.sharded_attack(functools.partial(fgsm, model[0]), mesh)
  np.testing.assert_array_equal(np.asarray(attack(placed, images, labels, EPS)),
                                np.asarray(attack(params, images, labels, EPS)))


@needs_8
@pytest.mark.parametrize('n', [16, 13, 5])
def test_sharded_fgsm_equals_single_device(model, n):
  apply_fn, params = model
  images, labels = _data(n, seed=n)
  want = np.asarray(fgsm(apply_fn, params, images, labels, EPS))
  attack = sharding.sharded_attack(functools.partial(fgsm, apply_fn), sharding.batch_mesh())
  got = attack(params, images, labels, EPS)
  assert got.shape == images.shape
  if n % DEVICES == 0:   # the result stays split: n / 8 rows on each of the 8 devices
    shards = got.addressable_shards
    assert len({s.device for s in shards}) == DEVICES
    assert all(s.data.shape[0] == n // DEVICES for s in shards)
  np.testing.assert_array_equal(np.asarray(got), want)   # bit for bit
  # static keyword arguments pass through, and change the result
  targeted = attack(params, images, labels, EPS, targeted=True)
  np.testing.assert_array_equal(
      np.asarray(targeted), np.asarray(fgsm(apply_fn, params, images, labels, EPS,
                                            targeted=True)))


@needs_8
def test_sharded_pgd_with_per_example_keys_equals_single_device(model):
  apply_fn, params = model
  images, labels = _data(12, seed=3)
  keys = jax.random.split(jax.random.key(7), 12)
  want = np.asarray(pgd(apply_fn, params, images, labels, EPS, key=keys, steps=2))
  # The keys are split along the batch, so they go by position (sharded_attack batches
  # positional arguments only).
  pgd_keys_first = lambda params, images, labels, keys, eps, **kw: pgd(
      apply_fn, params, images, labels, eps, key=keys, **kw)
  attack = sharding.sharded_attack(pgd_keys_first, sharding.batch_mesh(),
                                   batched_argnums=(1, 2, 3))
  got = np.asarray(attack(params, images, labels, keys, EPS, steps=2))
  np.testing.assert_array_equal(got, want)
  assert not np.array_equal(got, images)


@needs_8
def test_sharded_train_step_equals_single_device_and_masks_padding():
  config = train.TrainConfig(num_classes=CLASSES, image_size=SIZE, learning_rate=1e-3)
  images, labels = _data(13, seed=5)
  batch = {'image': images, 'label': labels}
  state0 = train.create_train_state(jax.random.key(0), config)
  single, m_single = train.train_step(jax.tree.map(jnp.array, state0), dict(batch))

  mesh = sharding.batch_mesh()
  state1 = train.create_train_state(jax.random.key(0), config)
  step = sharding.sharded_train_step(mesh)
  sharded, m_sharded = step(state1, batch)
  # The gradient sums over devices in another order: equal to float tolerance.
  assert float(m_sharded['count']) == 13.0
  np.testing.assert_allclose(float(m_sharded['loss']), float(m_single['loss']), rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                       rtol=1e-4, atol=1e-6),
               sharded.params, single.params)
  leaf = jax.tree.leaves(sharded.params)[0]
  assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == DEVICES


_CPU_DEVICES_CHILD = """
import functools, sys
import jax
from fgsm_jax import sharding
assert sharding.use_cpu_devices(3) == 3
import jax.numpy as jnp, numpy as np
from fgsm_jax.attacks import fgsm
from fgsm_jax.models import ApplyFn, fast_original_cnn
assert jax.device_count() == 3 and jax.default_backend() == "cpu", jax.devices()
module = fast_original_cnn(5)
params = module.init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))["params"]
rng = np.random.default_rng(0)
images = rng.random((7, 48, 48, 3), np.float32)
labels = rng.integers(0, 5, 7).astype(np.int32)
attack = sharding.sharded_attack(functools.partial(fgsm, ApplyFn(module)), sharding.batch_mesh())
adv = attack(params, images, labels, 4 / 255)
assert len(adv.sharding.device_set) == 3, adv.sharding
one = fgsm(ApplyFn(module), params, jax.device_put(images, jax.devices()[0]), labels, 4 / 255)
np.testing.assert_array_equal(np.asarray(adv), np.asarray(one))
try:
  sharding.use_cpu_devices(2)
except RuntimeError as e:
  assert "before any JAX computation" in str(e), e
else:
  sys.exit("use_cpu_devices after a computation did not raise")
print("ok")
"""


def test_use_cpu_devices_splits_the_cpu_and_sharded_attacks_use_every_device():
  if CHILD:
    pytest.skip('this is the child run')
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  result = subprocess.run([sys.executable, '-c', _CPU_DEVICES_CHILD], env=env,
                          capture_output=True, text=True, timeout=600,
                          cwd=pathlib.Path(__file__).resolve().parents[1])
  assert result.returncode == 0 and result.stdout.strip().endswith('ok'), \
      (result.stdout + result.stderr)[-3000:]


_PROCESS_CHILD = r"""
import sys
from xml.etree import ElementTree
rank, count, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
from fgsm_jax import processes, sharding
core = processes.pin_process_to_core(rank)
import os
assert os.sched_getaffinity(0) == {core}
import functools, jax, jax.numpy as jnp, numpy as np
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=count,
                           process_id=rank)
from fgsm_jax.attacks import fgsm
from fgsm_jax.models import ApplyFn, fast_original_cnn
assert jax.process_count() == count and jax.device_count() == count
module = fast_original_cnn(5)
params = module.init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))["params"]
rng = np.random.default_rng(7)
images = rng.random((8, 48, 48, 3), np.float32)
labels = rng.integers(0, 5, 8).astype(np.int32)
rows = slice(rank * 8 // count, (rank + 1) * 8 // count)
mesh = sharding.batch_mesh()
attack = sharding.sharded_attack(functools.partial(fgsm, ApplyFn(module)), mesh)
adv = attack(sharding.replicate(params, mesh), images[rows], labels[rows], 4 / 255)
assert adv.shape == (8, 48, 48, 3), adv.shape
[own] = adv.addressable_shards
np.save(out, np.asarray(own.data))
jax.distributed.shutdown()
"""


def test_one_pinned_process_per_core_equals_one_process(tmp_path):
  """The multi-host path on one host: 2 processes (jax.distributed on 127.0.0.1), each pinned
  to a core and holding its half of the batch, attack it as one global batch."""
  if CHILD:
    pytest.skip('this is the child run')
  if not hasattr(os, 'sched_setaffinity'):
    pytest.skip('pinning needs Linux')
  count, port = 2, processes.free_local_port()
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  procs = [subprocess.Popen([sys.executable, '-c', _PROCESS_CHILD, str(rank), str(count),
                             str(port), str(tmp_path / f'adv_{rank}.npy')],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=pathlib.Path(__file__).resolve().parents[1])
           for rank in range(count)]
  for proc in procs:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
  got = np.concatenate([np.load(tmp_path / f'adv_{rank}.npy') for rank in range(count)])
  module = fast_original_cnn(5)
  params = module.init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))['params']
  rng = np.random.default_rng(7)
  images = rng.random((8, 48, 48, 3), np.float32)
  labels = rng.integers(0, 5, 8).astype(np.int32)
  want = np.asarray(fgsm(ApplyFn(module), params, images, labels, 4 / 255))
  np.testing.assert_array_equal(got, want)


def test_use_cpu_devices_rejects_a_count_below_one():
  with pytest.raises(ValueError, match='>= 1'):
    sharding.use_cpu_devices(0)
