"""experiments/benchmark_fgsm.py end to end on tiny settings (JSON schema; no timing
assertions), and its command-line errors."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import pytest

from fgsm_jax import processes
from fgsm_jax.benchmarks import workers

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'experiments' / 'benchmark_fgsm.py'


def _load_script():
  spec = importlib.util.spec_from_file_location('benchmark_fgsm', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module   # dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


bench = _load_script()

FIELDS = {'attack': str, 'model': str, 'batch_size': int, 'dtype': str,
          'images_per_s': float, 'compile_s': float, 'backend': str, 'device': str,
          'framework': str, 'implementation': str, 'times_s': list}


@pytest.mark.slow
def test_runs_end_to_end_and_writes_the_records(tmp_path, capsys):
  out = tmp_path / 'sub' / 'bench.json'
  rc = bench.main(['--attacks', 'fgsm,pgd', '--steps', '1', '--batch-sizes', '2',
                   '--dtypes', 'float32,bfloat16', '--repeats', '1', '--warmup', '0',
                   '--json', str(out)])
  assert rc == 0
  records = json.loads(out.read_text())
  assert [(r['attack'], r['dtype']) for r in records] == [
      ('fgsm', 'float32'), ('pgd', 'float32'), ('fgsm', 'bfloat16'), ('pgd', 'bfloat16')]
  for r in records:
    for key, kind in FIELDS.items():
      assert isinstance(r[key], kind), (key, r[key])
    assert r['model'] == 'cnn' and r['batch_size'] == 2 and r['framework'] == 'fgsm_jax'
    assert r['images_per_s'] > 0 and r['compile_s'] > 0 and len(r['times_s']) == 1
    assert r['steps'] == (1 if r['attack'] == 'pgd' else None)
    assert 'peak_bytes' in r and 'temp_bytes' in r
  assert r['backend'] == 'cpu'
  printed = capsys.readouterr().out
  assert 'img/s' in printed and f'wrote 4 records to {out}' in printed


@pytest.mark.slow
def test_peers_are_checked_and_timed_as_ratios(tmp_path):
  pytest.importorskip('tensorflow')
  out = tmp_path / 'bench.json'
  rc = bench.main(['--batch-sizes', '2', '--repeats', '1', '--warmup', '0', '--peers', 'tf',
                   '--json', str(out)])
  assert rc == 0
  records = json.loads(out.read_text())
  assert [r['framework'] for r in records] == ['fgsm_jax', 'tf-eager', 'tf-function']
  for r in records[1:]:
    assert r['match']['ok'] and r['match']['frac_pixels_differ'] <= 1e-3
    # FGSM is judged above the gradient's rounding floor, which leaves most pixels in.
    assert r['match']['frac_pixels_differ_above_floor'] <= 1e-3
    assert r['match']['frac_pixels_below_floor'] < 0.5
    assert r['ratio'] == pytest.approx(records[0]['images_per_s'] / r['images_per_s'])


@pytest.mark.slow
def test_dlib_pgd_has_a_torch_peer_on_the_same_weights(tmp_path):
  pytest.importorskip('torch')
  out = tmp_path / 'dlib.json'
  rc = bench.main(['--models', 'dlib', '--attacks', 'pgd', '--steps', '2', '--batch-sizes', '2',
                   '--peers', 'torch', '--repeats', '1', '--warmup', '0', '--json', str(out)])
  assert rc == 0
  records = json.loads(out.read_text())
  assert [(r['framework'], r['model'], r['attack'], r['steps']) for r in records] == [
      ('fgsm_jax', 'dlib', 'pgd', 2), ('torch', 'dlib', 'pgd', 2)]
  torch_rec = records[1]
  assert 'dodging' in torch_rec['implementation']
  match = torch_rec['match']
  # The two steps agree within their allowance, or (on an AVX2 CPU: 0.32% after two steps,
  # 7e-6 after one) the first step does, where both compute the same function of one input.
  assert match['ok'] and (match['frac_pixels_differ'] <= 2e-3
                          or match['check_frac_pixels_differ'] <= 1e-3)
  assert torch_rec['ratio'] == pytest.approx(records[0]['images_per_s']
                                             / torch_rec['images_per_s'])


@pytest.mark.slow
def test_diverged_iterative_peers_are_checked_on_their_first_steps(tmp_path, monkeypatch):
  # Pretend the full-length runs diverged (as PGD-20 on the dlib ResNet does): the peer is
  # then judged by rerunning both attacks for CHECK_STEPS (1) step, where they really agree.
  pytest.importorskip('torch')
  from fgsm_jax.benchmarks import peers as peers_lib
  compare = peers_lib.compare_adversarials
  calls = []

  def diverged_once(ours, theirs, eps, gradient=None):
    calls.append(1)
    match = compare(ours, theirs, eps, gradient)
    if len(calls) == 1:
      match['frac_pixels_differ'] = 0.4
    return match

  monkeypatch.setattr(peers_lib, 'compare_adversarials', diverged_once)
  out = tmp_path / 'dlib.json'
  rc = bench.main(['--models', 'dlib', '--attacks', 'pgd', '--steps', '3', '--batch-sizes', '1',
                   '--peers', 'torch', '--repeats', '1', '--warmup', '0', '--json', str(out)])
  assert rc == 0 and len(calls) == 2
  match = json.loads(out.read_text())[1]['match']
  assert match['ok'] and match['frac_pixels_differ'] == 0.4
  assert match['check_steps'] == bench.CHECK_STEPS == 1
  assert match['check_frac_pixels_differ'] <= 1e-3
  # With no allowance left for the short check either, the peer is a mismatch (rc 1).
  calls.clear()
  monkeypatch.setattr(peers_lib, 'compare_adversarials',
                      lambda o, t, e, g=None: dict(compare(o, t, e, g), frac_pixels_differ=0.4))
  assert bench.main(['--models', 'dlib', '--attacks', 'pgd', '--steps', '3',
                     '--batch-sizes', '1', '--peers', 'torch', '--repeats', '1',
                     '--warmup', '0']) == 1


@pytest.mark.parametrize('flags,message', [
    (['--attacks', 'nope'], "unknown attack 'nope'"),
    (['--batch-sizes', '8,x'], "bad batch size 'x'"),
    (['--batch-sizes', '0'], 'batch size must be >= 1'),
    (['--dtypes', 'float16'], "unknown dtype 'float16'"),
    (['--repeats', '0'], '--repeats and --steps must be >= 1'),
    (['--peers', 'mxnet'], "unknown peer 'mxnet'"),
    (['--cpu-devices', '0'], '--cpu-devices must be >= 1'),
    (['--cpu-devices', '2', '--batch-sizes', '4,3'], 'multiples of --cpu-devices 2'),
    (['--cpu-processes', '0'], '--cpu-processes must be >= 1'),
    (['--cpu-processes', '2', '--batch-sizes', '4,3'], 'multiples of --cpu-processes 2'),
    (['--cpu-processes', '2', '--cpu-devices', '2', '--batch-sizes', '4'], 'not both'),
])
def test_bad_flags_are_usage_errors(flags, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    bench.parse_args(flags)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert 'usage:' in err and message in err


@pytest.mark.slow
def test_help_and_a_bad_flag_from_the_command_line():
  help_run = subprocess.run([sys.executable, str(SCRIPT), '--help'], capture_output=True,
                            text=True, timeout=300)
  assert help_run.returncode == 0 and '--batch-sizes' in help_run.stdout
  bad = subprocess.run([sys.executable, str(SCRIPT), '--models', 'vgg'], capture_output=True,
                       text=True, timeout=300)
  assert bad.returncode == 2 and "unknown model 'vgg'" in bad.stderr
  assert 'Traceback' not in bad.stderr


@pytest.mark.slow
def test_cpu_devices_shard_the_attack_over_that_many_devices(tmp_path):
  # A fresh process: the CPU backend is split before JAX starts.
  out = tmp_path / 'sharded.json'
  run = subprocess.run(
      [sys.executable, str(SCRIPT), '--cpu-devices', '2', '--attacks', 'fgsm', '--batch-sizes',
       '4', '--repeats', '1', '--warmup', '0', '--json', str(out)],
      capture_output=True, text=True, timeout=600, cwd=REPO,
      env={**__import__('os').environ, 'JAX_PLATFORMS': 'cpu'})
  assert run.returncode == 0, run.stderr[-2000:]
  (record,) = json.loads(out.read_text())
  assert record['devices'] == 2 and record['device'].endswith('x2')
  assert 'sharded over 2 devices' in record['implementation']
  assert record['flops_per_image'] is None   # one device's program: not per image


@pytest.mark.slow
def test_cpu_processes_split_the_attack_between_worker_processes(tmp_path):
  # The workers' gathered images must match the torch peer's before it is timed.
  pytest.importorskip('torch')
  out = tmp_path / 'processes.json'
  run = subprocess.run(
      [sys.executable, str(SCRIPT), '--cpu-processes', '2', '--attacks', 'fgsm',
       '--batch-sizes', '4', '--repeats', '2', '--warmup', '0', '--peers', 'torch',
       '--json', str(out)],
      capture_output=True, text=True, timeout=600, cwd=REPO,
      env={**__import__('os').environ, 'JAX_PLATFORMS': 'cpu'})
  assert run.returncode == 0, run.stderr[-2000:]
  ours, peer = json.loads(out.read_text())
  assert ours['devices'] == 2 and ours['device'].endswith('x2')
  assert '2 processes' in ours['implementation'] and len(ours['times_s']) == 2
  assert ours['compile_s'] > 0 and ours['peak_bytes'] is None
  assert peer['framework'] == 'torch' and peer['match']['ok']
  assert peer['match']['frac_pixels_differ'] <= 1e-3


@pytest.mark.slow
def test_a_failing_worker_is_a_one_line_skip(capsys):
  args = bench.parse_args(['--cpu-processes', '2', '--batch-sizes', '2', '--models', 'cnn'])
  args.num_classes = 1   # the workers' own argument check rejects it and they exit
  records, _ = bench.run(args, log=print)
  printed = capsys.readouterr().out
  assert records == []
  skip = [line for line in printed.splitlines() if line.startswith('skip fgsm')]
  assert len(skip) == 1 and 'RuntimeError: worker 0 of 2' in skip[0], printed


def test_a_worker_checks_its_job_before_pinning_itself_or_joining(tmp_path, monkeypatch,
                                                                   capsys):
  # In process: a bad job must end the worker before it touches the process (pinning it to
  # a core) or the network (jax.distributed); both are replaced here by failures.
  def must_not_run(*args, **kwargs):
    raise AssertionError('the worker went on with a bad job')
  monkeypatch.setattr(processes, 'pin_process_to_core', must_not_run)
  monkeypatch.setattr(jax.distributed, 'initialize', must_not_run)
  job = dict(attack='fgsm', model='cnn', dtype='float32', batch=3, steps=1, eps=0.02,
             num_classes=5, seed=0)   # a batch of 3 does not split between 2 workers
  (tmp_path / 'job.json').write_text(json.dumps(job))
  assert workers.worker_main(0, 2, 1, str(tmp_path)) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: bad job') and 'for 2 workers' in err and '\n' not in err


def test_cpu_devices_after_jax_started_is_a_one_line_error(capsys):
  import jax
  jax.numpy.zeros(1).block_until_ready()   # the CPU backend has started
  assert bench.main(['--cpu-devices', '2', '--batch-sizes', '2', '--repeats', '1']) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: --cpu-devices 2:') and 'before any JAX computation' in err


@pytest.mark.slow
def test_fused_cnn_strict_precision_and_xla_costs_are_recorded(tmp_path):
  out = tmp_path / 'fused.json'
  try:
    assert bench.main(['--models', 'cnn-fused,cnn-xla', '--batch-sizes', '2', '--repeats', '1',
                       '--warmup', '0', '--fp32-strict', '--json', str(out)]) == 0
  finally:
    import jax
    jax.config.update('jax_default_matmul_precision', None)
  fused, xla = json.loads(out.read_text())
  assert (fused['model'], xla['model']) == ('cnn-fused', 'cnn-xla')
  assert fused['precision'] == xla['precision'] == 'highest'
  # XLA's count of the unchunked plain network's FGSM: ~68.4 MFLOP of convolutions and
  # products per image (fgsm_jax.benchmarks.roofline.cnn_fgsm_cost) plus elementwise work.
  assert 68e6 < xla['flops_per_image'] < 80e6
  assert xla['bytes_accessed_per_image'] > 10e6
