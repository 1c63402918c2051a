"""fgsm_jax.benchmarks.roofline and experiments/roofline.py: the CNN's cost model, the
ceilings' measurement and each record's share of its roofline."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from fgsm_jax.benchmarks import roofline

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'experiments' / 'roofline.py'
CEILINGS = {'device': 'test', 'backend': 'gpu', 'copy_bytes_per_s': 4e12,
            'matmul_flops_per_s': {'float32': 300e12, 'bfloat16': 600e12}}


def test_cnn_fgsm_cost_counts_the_convolutions_and_products_twice():
  cost = roofline.cnn_fgsm_cost()
  # Forward multiply-adds, counted by hand: 160x160x8x27 + 80x80x16x72 + 26x26x32x144
  # + 2048x512 + 512x50; FGSM doubles them (backward to the input), 2 FLOP each.
  macs = 160 * 160 * 8 * 27 + 80 * 80 * 16 * 72 + 26 * 26 * 32 * 144 + 2048 * 512 + 512 * 50
  assert cost['flops_per_image'] == 4 * macs
  half = roofline.cnn_fgsm_cost(dtype_bytes=2)
  image = 4.0 * 3 * 160 * 160 * 3   # the float32 image and result do not shrink
  assert half['bytes_per_image'] - image == pytest.approx((cost['bytes_per_image'] - image) / 2)
  assert 6 < cost['flops_per_image'] / cost['bytes_per_image'] < 7   # memory-bound on GPUs


def test_roofline_rows_take_the_lower_ceiling_and_scale_with_steps():
  records = [
      {'framework': 'fgsm_jax', 'attack': 'fgsm', 'model': 'cnn', 'dtype': 'float32',
       'batch_size': 64, 'steps': None, 'images_per_s': 100_000.0},
      {'framework': 'fgsm_jax', 'attack': 'pgd', 'model': 'cnn', 'dtype': 'bfloat16',
       'batch_size': 64, 'steps': 10, 'images_per_s': 10_000.0},
      {'framework': 'fgsm_jax', 'attack': 'fgsm', 'model': 'dlib', 'dtype': 'float32',
       'batch_size': 64, 'steps': None, 'images_per_s': 5.0},          # not the CNN: left out
      {'framework': 'torch', 'attack': 'fgsm', 'model': 'cnn', 'dtype': 'float32',
       'batch_size': 64, 'steps': None, 'images_per_s': None},          # not timed: left out
  ]
  fgsm_row, pgd_row = roofline.roofline_rows(records, CEILINGS)
  f32 = roofline.cnn_fgsm_cost()
  assert fgsm_row['bound'] == 'memory'
  assert fgsm_row['attainable_images_per_s'] == pytest.approx(4e12 / f32['bytes_per_image'])
  assert fgsm_row['share'] == pytest.approx(100_000 * f32['bytes_per_image'] / 4e12)
  bf16 = roofline.cnn_fgsm_cost(dtype_bytes=2)
  assert pgd_row['attainable_images_per_s'] == pytest.approx(4e12 / (10 * bf16['bytes_per_image']))
  assert pgd_row['achieved_flops_per_s'] == pytest.approx(10_000 * 10 * bf16['flops_per_image'])
  # A device with little arithmetic and much bandwidth makes the CNN compute-bound.
  (row,) = roofline.roofline_rows(records[:1], {**CEILINGS, 'copy_bytes_per_s': 1e15,
                                                'matmul_flops_per_s': {'float32': 1e12}})
  assert row['bound'] == 'compute'
  assert row['attainable_images_per_s'] == pytest.approx(1e12 / f32['flops_per_image'])


@pytest.mark.slow
def test_measure_then_report_from_the_command_line(tmp_path):
  ceilings = tmp_path / 'ceilings.json'
  bench = tmp_path / 'bench.json'
  bench.write_text(json.dumps([{'framework': 'fgsm_jax', 'attack': 'fgsm', 'model': 'cnn',
                                'dtype': 'float32', 'batch_size': 8, 'steps': None,
                                'images_per_s': 500.0}]))
  measured = subprocess.run(
      [sys.executable, str(SCRIPT), '--measure', '--copy-mib', '8', '--matmul-n', '64',
       '--repeats', '2', '--json', str(ceilings)],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert measured.returncode == 0, measured.stderr[-2000:]
  saved = json.loads(ceilings.read_text())['ceilings']
  assert saved['copy_bytes_per_s'] > 0 and saved['backend'] == 'cpu'
  assert set(saved['matmul_flops_per_s']) == {'float32', 'bfloat16'}
  report = subprocess.run(
      [sys.executable, str(SCRIPT), '--ceilings', str(ceilings), str(bench)],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert report.returncode == 0, report.stderr[-2000:]
  assert 'batch     8:         500 img/s' in report.stdout and 'roofline' in report.stdout


@pytest.mark.slow
@pytest.mark.parametrize('flags,message', [
    ([], 'exactly one of --measure and --ceilings'),
    (['--ceilings', '/nonexistent/c.json'], '/nonexistent/c.json: cannot read ceilings'),
])
def test_bad_invocations_are_one_line_errors(flags, message):
  run = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
  assert run.returncode == 2 and message in run.stderr and 'Traceback' not in run.stderr
