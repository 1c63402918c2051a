"""Attack throughput (experiments/benchmark_fgsm.py): images/s of fgsm_jax's attacks per model,
batch size and dtype, and of the same attacks in TensorFlow and PyTorch on the same weights
(--peers), as ratios.

  python experiments/benchmark_fgsm.py --models dlib --attacks pgd --steps 20 \
      --batch-sizes 8,32 --peers torch

  python experiments/benchmark_fgsm.py --attacks fgsm,pgd --batch-sizes 1,8,64,256 \
      --peers tf,torch --json /tmp/bench.json

Models (--models): 'cnn' is the original face CNN as users get it (fgsm_jax.models.
fast_original_cnn, 160 x 160 x 3, 50 classes: the fused blocks on CPU and CUDA GPUs, and
ApplyFn's default CPU chunks of 4); 'cnn-xla' the plain OriginalCNN (nn.Conv -> relu ->
max_pool, no CPU batch chunking); 'cnn-fused' the fused blocks on every backend; 'dlib'
dlib's face-recognition ResNet with the fast forms (fast_dlib_resnet; 150 x 150 x 3 chips ->
128-D, dodging loss), listed when fgsm_jax.models.dlib_resnet imports. Attacks (--attacks):
names of fgsm_jax.attacks.ATTACKS, plus 'fgsm_naive': the library's plain FGSM
(``attacks.fgsm``: jit(vmap(grad))) on the plain network without CPU chunks (the
straightforward JAX FGSM, for reference). Iterative attacks run --steps steps; PGD starts at
x (random_init=False) with step 2.5 eps / steps, and its PyTorch peer does the same.

Peers (--peers; float32 only): on 'cnn', 'tf' (the notebook's FGSM, eager and tf.function)
and 'torch' (torchattacks FGSM / PGD) on copies of the same network with the same weights;
on 'dlib', 'torch' only (torchattacks FGSM / PGD on a PyTorch copy of the ResNet with the same
weights, ascending the same dodging loss: see fgsm_jax.benchmarks.peers.dodging_logits).
'cnn-xla' and 'cnn-fused' have no peers (they would be the 'cnn' ones again).
--fp32-strict makes both sides compute float32 convolutions and products in full float32
(JAX's default precision 'highest'; torch's TF32 switches off). Even then, on an H200, 4.4%
of FGSM's pixels differed between the two: pixels whose gradient is zero up to float32
rounding (an untrained network cancels itself there), whose sign any two implementations
draw differently (the plain and the fast JAX CNN too: BENCHMARKS.md section 7). So a
single-step attack's peer is judged on the pixels whose |gradient| (fgsm_jax's, float32)
is above peers.GRADIENT_FLOOR times its image's largest (match: frac_pixels_differ_above_floor,
frac_pixels_below_floor); all pixels are still reported (frac_pixels_differ).

Devices (--cpu-devices N, CPU only): the CPU backend is split into N devices
(fgsm_jax.sharding.use_cpu_devices) and fgsm_jax's attacks run data-parallel over them
(sharding.sharded_attack over batch_mesh(): one slice of the batch per core); records carry
devices. With the default 1 the attack runs as one program on one device.
--cpu-processes N (CPU only) runs fgsm_jax's attack as N worker processes
(fgsm_jax.benchmarks.workers) instead, one per core (fgsm_jax.processes.pin_process_to_core) and
joined by jax.distributed.initialize on 127.0.0.1 -- the multi-host code path on one host: the
batch is split between the processes (sharding.shard_batch), each attacks its part single-
threaded. The parent keeps the peers and times a call from sending "run" to every worker until
each has answered that its part is done (block_until_ready), so the pipe round trip is
included; the workers' adversarial images are gathered for the peers' check. OMP_WAIT_POLICY
defaults to PASSIVE here, so that torch's idle OpenMP threads sleep instead of spinning through
the next runner's timed call.

Weights are random (the CNN's Flax init; dlib's real weights when the packaged file loads):
throughput does not depend on the weights' values. Images are uniform random in [0, 1].

Each configuration is compiled once (lower + compile, timed apart as compile_s; for peers,
compile_s is the first call minus the steady-state median), run --warmup times, then timed
--repeats times with block_until_ready; images_per_s = batch / median time. fgsm_jax and its
peers are timed in interleaved rounds (one call each per round), so a change in machine load
hits all of them alike and the ratios stay meaningful on a shared machine. Before timing,
each peer's adversarial images are compared with fgsm_jax's (fraction of pixels differing by
more than eps / 10, and the largest difference: sign flips where the gradient is ~0 are
allowed up to --peer-tolerance, times the steps for iterative attacks, whose later steps
follow an early flip); a peer that disagrees is reported and not timed. Sign iteration can
amplify one early flip without bound: on the dlib ResNet, a ReLU whose input is ~0 at one
step and falls on different sides in the two implementations' float rounding changes the
gradient of a whole image, and after 20 PGD steps a third of the pixels differ although
the gradients agree in sign at every common point. So when an iterative attack's images
differ by more than the allowance, both sides are rerun for the first CHECK_STEPS steps
(same step size) and the peer passes if those agree within the allowance for that many
steps; match then also holds check_steps and check_frac_pixels_differ.

Work: flops_per_image and bytes_accessed_per_image are XLA's cost analysis of the compiled
attack (its own count of floating-point operations and of the bytes its operations read and
write, divided by the batch), where the backend reports them and the attack runs on one
device. XLA counts a loop's body once: for iterative attacks they are one step's work, and
on CPU, where the CNN's batch runs in chunks of 4 in a loop, one chunk's (divided by the
whole batch). On GPUs XLA leaves cuDNN's convolutions (custom calls) out of both counts, so
there they are far below the true work (an H200 run reported 5.4 MFLOP per image for the
CNN's FGSM, whose convolutions alone are 68 MFLOP).

Peak memory: device.memory_stats()['peak_bytes_in_use'] where the backend reports it (GPU;
not CPU), else null -- the process's peak so far, which no API resets, so only a run's first
configuration or a larger one than before reads as its own; temp_bytes is XLA's compiled
scratch size for the configuration itself (all backends).

--json OUT writes a list of records: attack, model, batch_size, dtype, images_per_s,
compile_s, backend, device, devices, precision, peak_bytes, temp_bytes,
flops_per_image, bytes_accessed_per_image, steps, framework ('fgsm_jax', 'tf-eager',
'tf-function', 'torch'), implementation, times_s, and for peers match (the comparison) and
ratio (fgsm_jax images/s over the peer's).

The runners and the timing loop live here; the worker processes of --cpu-processes in
``fgsm_jax.benchmarks.workers``; ``experiments/benchmark_fgsm.py`` parses the options.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

PEER_NAMES = ('tf', 'torch')
PEER_MODELS = ('cnn', 'dlib')   # models that have peers (fgsm_jax.benchmarks.peers.MODELS)
# Steps of the fallback comparison of iterative attacks (see the docstring): one. On an AVX2
# CPU (2026-12-07) two PGD steps on the dlib ResNet already differ from torch's in 0.33% of
# pixels against 7e-6 after one: the second step's gradient is taken at points that one
# flipped ReLU already set apart (on the AVX-512 machines before, two steps agreed).
CHECK_STEPS = 1
DTYPES = ('float32', 'bfloat16')
EXTRA_ATTACKS = ('fgsm_naive',)


def _cnn_variants() -> dict[str, Callable]:
  from fgsm_jax.models import OriginalCNN, fast_original_cnn
  return {'cnn': lambda n, dtype: fast_original_cnn(n, dtype),
          'cnn-xla': lambda n, dtype: OriginalCNN(num_classes=n, dtype=dtype),
          'cnn-fused': lambda n, dtype: fast_original_cnn(n, dtype, impl='fused')}


# --models name of the original CNN -> (num_classes, dtype) -> its module.
CNN_VARIANTS = _cnn_variants()


def models_available() -> list[str]:
  names = list(CNN_VARIANTS)
  try:
    import fgsm_jax.models.dlib_resnet  # noqa: F401
    names.append('dlib')
  except ImportError:
    pass
  return names


# --- what is timed ---------------------------------------------------------------------------

@dataclasses.dataclass
class Workload:
  """One (model, dtype)'s apply_fn, params, input shape and targets maker."""
  model: str
  dtype: str
  apply_fn: Any
  params: Any
  image_size: int
  loss_fn: Any
  make_targets: Callable[[np.random.Generator, int], np.ndarray]
  weights: str


def build_workload(model: str, dtype: str, num_classes: int, seed: int) -> Workload:
  import jax
  import jax.numpy as jnp
  from fgsm_jax.attacks import losses
  from fgsm_jax.models import ApplyFn
  compute = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[dtype]
  if model in CNN_VARIANTS:
    module = CNN_VARIANTS[model](num_classes, compute)
    params = module.init(jax.random.key(seed), jnp.zeros((1, 160, 160, 3)))['params']
    return Workload(model, dtype, ApplyFn(module), params, 160, losses.cross_entropy,
                    lambda rng, n: rng.integers(0, num_classes, n).astype(np.int32),
                    'random (Flax init)')
  if model == 'dlib':
    from fgsm_jax.models import dlib_resnet
    if dtype != 'float32':
      raise NotImplementedError('DlibResNet computes in float32 only')
    module = dlib_resnet.fast_dlib_resnet()
    size = dlib_resnet.CHIP_SIZE
    try:
      params, weights = dlib_resnet.load_dlib_resnet(), "dlib's trained weights"
    except (dlib_resnet.DlibModelError, FileNotFoundError):   # bad or no model file
      params = module.init(jax.random.key(seed), jnp.zeros((1, size, size, 3)))['params']
      weights = 'random (Flax init)'
    dim = dlib_resnet.DESCRIPTOR_DIM
    # Dodging away from a descriptor that is not the image's own (at its own, the loss and
    # its gradient are 0).
    return Workload(model, dtype, ApplyFn(module), params, size, losses.dodging,
                    lambda rng, n: (0.1 * rng.standard_normal((n, dim))).astype(np.float32),
                    weights)
  raise ValueError(f'unknown model {model!r}')


def attack_function(attack: str, work: Workload, eps: float, steps: int,
                    step_size: float | None = None) -> Callable:
  """attack(params, images, labels, key) -> adversarial images, not yet jitted.

  PGD's step size is ``step_size``, default ``pgd_step_size(eps, steps)``.
  """
  from fgsm_jax.attacks import ATTACKS, fgsm
  from fgsm_jax.models import ApplyFn, OriginalCNN
  if attack == 'fgsm_naive':   # the library's plain FGSM, jit(vmap(grad)), on the plain network
    apply_fn = ApplyFn(work.apply_fn.module, cpu_chunk=None)
    if work.model in CNN_VARIANTS:
      apply_fn = ApplyFn(OriginalCNN(work.apply_fn.module.num_classes,
                                     dtype=work.apply_fn.module.dtype), cpu_chunk=None)
    return lambda params, images, labels, key: fgsm(apply_fn, params, images, labels, eps,
                                                    loss_fn=work.loss_fn)
  overrides: dict[str, Any] = {'loss_fn': work.loss_fn}
  if attack != 'fgsm' and attack != 'fgm_l2':
    overrides['steps'] = steps
  if attack in ('pgd', 'pgd_l2'):
    overrides.update(random_init=False,
                     step_size=pgd_step_size(eps, steps) if step_size is None else step_size)
  fn = ATTACKS[attack]

  def run(params, images, labels, key):
    return fn(work.apply_fn, params, images, labels, eps, key=key, **overrides)
  return run


def pgd_step_size(eps: float, steps: int) -> float:
  return 2.5 * eps / steps


def _device_info() -> tuple[str, str]:
  import jax
  d = jax.devices()[0]
  return jax.default_backend(), f'{d.device_kind} x{jax.device_count()}'


def _peak_bytes() -> int | None:
  import jax
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:   # not every backend implements it
    return None
  return int(stats['peak_bytes_in_use']) if stats and 'peak_bytes_in_use' in stats else None


class JaxRunner:
  """fgsm_jax's attack, compiled once; ``call()`` runs it to completion."""
  framework = 'fgsm_jax'

  def __init__(self, attack: str, work: Workload, batch: int, eps: float, steps: int,
               images: np.ndarray, targets: np.ndarray):
    import jax
    from fgsm_jax import sharding
    from fgsm_jax.attacks import validation
    attack_fn = attack_function(attack, work, eps, steps)
    self.devices = jax.device_count()
    if self.devices > 1:   # data-parallel over the devices (--cpu-devices)
      mesh = sharding.batch_mesh()
      if batch % self.devices:
        raise ValueError(f'batch {batch} does not split over {self.devices} devices')
      fn = sharding.data_parallel(attack_fn, mesh, 4, batched_argnums=(1, 2))
      images, targets = sharding.shard_batch((images, targets), mesh)
      # Placed once: unplaced parameters would be copied to every device on every call.
      params, key = sharding.replicate((work.params, jax.random.key(0)), mesh)
    else:
      fn = jax.jit(attack_fn)
      images, targets = jax.device_put(images), jax.device_put(targets)
      params, key = jax.device_put((work.params, jax.random.key(0)))
    self.args = (params, images, targets, key)
    start = time.perf_counter()
    # The attacks' input checks off (fgsm_jax.attacks.validate): nothing checked is timed.
    # (Traced inside this jit they could check only eps anyway; the compiled call below
    # never enters the checking wrapper.)
    with validation(False):
      self.compiled = fn.lower(*self.args).compile()
    self.compile_s = time.perf_counter() - start
    try:
      self.temp_bytes = int(self.compiled.memory_analysis().temp_size_in_bytes)
    except Exception:   # not every backend implements it
      self.temp_bytes = None
    self.flops_per_image = self.bytes_accessed_per_image = None
    try:   # of one device's program: meaningless per image of a sharded batch
      if self.devices > 1:
        raise ValueError('sharded')
      cost = self.compiled.cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      self.flops_per_image = float(cost['flops']) / batch
      self.bytes_accessed_per_image = float(cost['bytes accessed']) / batch
    except Exception:   # likewise
      pass
    where = f', sharded over {self.devices} devices' if self.devices > 1 else ''
    self.implementation = f'fgsm_jax ({work.model}, {work.dtype}{where})'

  def call(self):
    return self.compiled(*self.args).block_until_ready()

  def result(self) -> np.ndarray:
    return np.asarray(self.call())

  def close(self):
    pass


class PeerRunner:
  def __init__(self, peer, images: np.ndarray, labels: np.ndarray):
    self.peer = peer
    self.framework = peer.name
    self.implementation = peer.implementation
    self.inputs = peer.prepare(images, labels)
    start = time.perf_counter()
    self.first = peer.run(self.inputs)
    self.first_s = time.perf_counter() - start
    self.compile_s = None
    self.temp_bytes = None
    self.devices = 1
    self.flops_per_image = self.bytes_accessed_per_image = None

  def call(self):
    return self.peer.run(self.inputs)


class ProcessRunner:
  """fgsm_jax's attack run by ``count`` worker processes (``python -m
  fgsm_jax.benchmarks.workers``; the protocol is that module's docstring)."""
  framework = 'fgsm_jax'

  def __init__(self, attack: str, model: str, dtype: str, batch: int, count: int,
               args: argparse.Namespace, images: np.ndarray, targets: np.ndarray):
    self.devices = count
    self.temp_bytes = self.flops_per_image = self.bytes_accessed_per_image = None
    self.implementation = (f'fgsm_jax ({model}, {dtype}, {count} processes, one per core, '
                           f'jax.distributed)')
    self.dir = pathlib.Path(tempfile.mkdtemp(prefix='fgsm_jax_workers_'))
    self.procs: list[subprocess.Popen] = []
    try:
      np.save(self.dir / 'images.npy', images)
      np.save(self.dir / 'targets.npy', targets)
      job = dict(attack=attack, model=model, dtype=dtype, batch=batch, steps=args.steps,
                 eps=args.eps, num_classes=args.num_classes, seed=args.seed)
      (self.dir / 'job.json').write_text(json.dumps(job))
      from fgsm_jax import processes
      port = processes.free_local_port()
      for rank in range(count):
        with open(self.dir / f'worker_{rank}.log', 'w') as log:
          self.procs.append(subprocess.Popen(
              [sys.executable, '-m', 'fgsm_jax.benchmarks.workers', str(rank), str(count),
               str(port), str(self.dir)],
              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
              bufsize=1))
      self.compile_s = max(float(reply.split()[1]) for reply in self._expect('ready'))
    except BaseException:
      self.close()
      raise

  def _send(self, command: str):
    for proc in self.procs:
      proc.stdin.write(command + '\n')
      proc.stdin.flush()

  def _expect(self, word: str) -> list[str]:
    replies = []
    for rank, proc in enumerate(self.procs):
      line = proc.stdout.readline()
      if not line.startswith(word):
        log = (self.dir / f'worker_{rank}.log').read_text(errors='replace').strip()
        last = log.splitlines()[-1] if log else '(no output)'
        raise RuntimeError(f'worker {rank} of {len(self.procs)} answered {line.strip()!r} '
                           f'instead of {word!r}; its last log line: {last}')
      replies.append(line)
    return replies

  def call(self):
    self._send('run')
    self._expect('done')

  def result(self) -> np.ndarray:
    self._send('save')
    self._expect('saved')
    return np.concatenate([np.load(self.dir / f'adversarial_{rank}.npy')
                           for rank in range(len(self.procs))])

  def close(self):
    for proc in self.procs:
      try:
        if proc.poll() is None:
          proc.stdin.write('quit\n')
          proc.stdin.flush()
        proc.wait(timeout=60)
      except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    self.procs = []
    shutil.rmtree(self.dir, ignore_errors=True)


def time_interleaved(runners: list, warmup: int, repeats: int) -> list[list[float]]:
  """Per runner, ``repeats`` wall times (s) of one call, in rounds of one call per runner."""
  for _ in range(warmup):
    for r in runners:
      r.call()
  times = [[] for _ in runners]
  for _ in range(repeats):
    for i, r in enumerate(runners):
      start = time.perf_counter()
      r.call()
      times[i].append(time.perf_counter() - start)
  return times


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> tuple[list[dict], bool]:
  """Every configuration of ``args`` (the script's options: models, dtypes, attacks,
  batch_sizes, peers, cpu_processes, ...); returns (records, every peer matched)."""
  import jax
  backend, device = _device_info()
  log(f'backend {backend}, device {device}, jax {jax.__version__}, '
      f'{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}')
  records: list[dict] = []
  all_match = True
  rng = np.random.default_rng(args.seed)
  for model in args.models:
    for dtype in args.dtypes:
      try:
        work = build_workload(model, dtype, args.num_classes, args.seed)
      except NotImplementedError as e:
        log(f'skip {model} {dtype}: {e}')
        continue
      for attack in args.attacks:
        steps = None if attack in ('fgsm', 'fgm_l2', 'fgsm_naive') else args.steps
        for batch in args.batch_sizes:
          images = rng.random((batch, work.image_size, work.image_size, 3), np.float32)
          targets = work.make_targets(rng, batch)
          try:
            if args.cpu_processes > 1:
              ours = ProcessRunner(attack, model, dtype, batch, args.cpu_processes, args,
                                   images, targets)
            else:
              ours = JaxRunner(attack, work, batch, args.eps, args.steps, images, targets)
          except Exception as e:   # e.g. bfloat16 unsupported on this backend
            log(f'skip {attack} {model} {dtype} batch {batch}: '
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
          try:
            runners: list = [ours]
            matches: dict[int, dict] = {}
            if args.peers and model in PEER_MODELS and dtype == 'float32':
              from fgsm_jax.benchmarks import peers as peers_lib
              adv = ours.result()
              for peer in peers_lib.build_peers(
                  args.peers, attack, work.params, args.num_classes, args.eps,
                  image_size=work.image_size, steps=args.steps,
                  alpha=pgd_step_size(args.eps, args.steps), model=model):
                # targets: class labels (cnn) or reference descriptors (dlib), as fgsm_jax's.
                runner = PeerRunner(peer, images, targets)
                gradient = None if steps is not None else _input_gradient(work, images, targets)
                match = peers_lib.compare_adversarials(adv, peer.to_numpy(runner.first),
                                                       args.eps, gradient)
                # One flipped sign changes every later gradient of an iterative attack, so
                # its allowance grows with the steps. A single step is judged where its
                # gradient is above the rounding floor (peers_lib.GRADIENT_FLOOR).
                differ = match.get('frac_pixels_differ_above_floor', match['frac_pixels_differ'])
                match['ok'] = differ <= args.peer_tolerance * (steps or 1)
                if not match['ok'] and steps is not None and steps > CHECK_STEPS:
                  short = _short_check(args, attack, work, model, peer, images, targets, steps)
                  match.update(check_steps=CHECK_STEPS, check_frac_pixels_differ=short)
                  match['ok'] = short <= args.peer_tolerance * CHECK_STEPS
                if not match['ok']:
                  all_match = False
                  log(f'MISMATCH {peer.name} {attack} batch {batch}: {match}; not timed')
                  records.append(_record(attack, model, batch, dtype, None, None, backend,
                                         device, steps, runner, [], match=match))
                  continue
                matches[len(runners)] = match
                runners.append(runner)
            times = time_interleaved(runners, args.warmup, args.repeats)
            peak = None if args.cpu_processes > 1 else _peak_bytes()
            ours_rate = batch / statistics.median(times[0])
            for i, (runner, t) in enumerate(zip(runners, times)):
              median = statistics.median(t)
              rate = batch / median
              compile_s = runner.compile_s
              if compile_s is None:   # a peer: first call (tracing/graph building) - steady
                compile_s = max(runner.first_s - median, 0.0)
              rec = _record(attack, model, batch, dtype, rate, compile_s, backend, device, steps,
                            runner, t, peak_bytes=peak if i == 0 else None,
                            match=matches.get(i))
              if i == 0 and args.cpu_processes > 1:   # the parent's JAX is one device
                rec['device'] = f"{device.rsplit(' x', 1)[0]} x{args.cpu_processes}"
              if i > 0:
                rec['ratio'] = ours_rate / rate
              records.append(rec)
              log(_line(rec))
          finally:
            ours.close()
  return records, all_match


def _input_gradient(work: 'Workload', images: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """The plain float32 input gradient of the workload's loss (what a single step's sign is
  taken of), for judging peers above the rounding floor."""
  import jax
  from fgsm_jax.attacks import core
  grad = jax.jit(lambda x, t: core.input_gradient(work.apply_fn, work.params, x, t,
                                                  work.loss_fn))
  return np.asarray(grad(images, targets))


def _short_check(args: argparse.Namespace, attack: str, work: Workload, model: str, peer,
                 images: np.ndarray, targets: np.ndarray, steps: int) -> float:
  """Fraction of pixels (beyond eps / 10) in which fgsm_jax's and ``peer``'s attack differ
  after CHECK_STEPS steps of the step size that ``steps`` steps use."""
  import jax
  from fgsm_jax.benchmarks import peers as peers_lib
  alpha = pgd_step_size(args.eps, steps)
  fn = jax.jit(attack_function(attack, work, args.eps, CHECK_STEPS, step_size=alpha))
  ours = np.asarray(fn(work.params, images, targets, jax.random.key(0)))
  kind = 'tf' if peer.name.startswith('tf') else peer.name
  [short_peer] = [p for p in peers_lib.build_peers(
      [kind], attack, work.params, args.num_classes, args.eps, image_size=work.image_size,
      steps=CHECK_STEPS, alpha=alpha, model=model) if p.name == peer.name]
  theirs = short_peer.to_numpy(short_peer.run(short_peer.prepare(images, targets)))
  return peers_lib.compare_adversarials(ours, theirs, args.eps)['frac_pixels_differ']


def _record(attack, model, batch, dtype, rate, compile_s, backend, device, steps, runner,
            times, *, peak_bytes=None, match=None) -> dict:
  rec = {'attack': attack, 'model': model, 'batch_size': batch, 'dtype': dtype,
         'images_per_s': rate, 'compile_s': compile_s, 'backend': backend, 'device': device,
         'devices': runner.devices, 'precision': _precision(), 'peak_bytes': peak_bytes,
         'temp_bytes': runner.temp_bytes, 'flops_per_image': runner.flops_per_image,
         'bytes_accessed_per_image': runner.bytes_accessed_per_image, 'steps': steps,
         'framework': runner.framework, 'implementation': runner.implementation,
         'times_s': [round(t, 6) for t in times]}
  if match is not None:
    rec['match'] = match
  return rec


def _precision() -> str:
  import jax
  return jax.config.jax_default_matmul_precision or 'default'


def _line(rec: dict) -> str:
  rate = '-' if rec['images_per_s'] is None else f"{rec['images_per_s']:9.1f} img/s"
  comp = '' if rec['compile_s'] is None else f"  compile {rec['compile_s']:6.2f} s"
  ratio = f"  fgsm_jax/peer {rec['ratio']:5.2f}x" if 'ratio' in rec else ''
  match = ''
  if 'match' in rec:
    m = rec['match']
    match = f"  differ {m['frac_pixels_differ']:.1e} max {m['max_abs_diff']:.3f}"
    if 'frac_pixels_differ_above_floor' in m:
      match += f" (above the gradient floor {m['frac_pixels_differ_above_floor']:.1e})"
    if 'check_steps' in m:
      match += f" (first {m['check_steps']} steps: differ {m['check_frac_pixels_differ']:.1e})"
  steps = f" {rec['steps']} steps" if rec['steps'] else ''
  return (f"{rec['attack']:>10s}{steps} {rec['model']:>7s} {rec['dtype']:>8s} "
          f"batch {rec['batch_size']:4d} {rec['framework']:>12s} {rate}{comp}{ratio}{match}")
