#!/usr/bin/env python
"""Test accuracy of trained classifiers under many attacks and budgets, white-box and transfer.

  python experiments/attack_sweep.py --workdir runs/gt_cnn --attacks fgsm,pgd,mifgsm \
      --eps 1,2,4,8 --target runs/gt_resnet

White-box: each attack runs on the --checkpoint model (default: the one in --workdir) and is
scored on it. Transfer: adversarial images computed on --source (default: --checkpoint) are
scored on --target. eps is on the 0-255 scale and means an L-inf budget of eps/255; for the
L2 attacks (fgm_l2, pgd_l2) it means an L2 radius of eps/255 * sqrt(H*W*C), the L2 norm of a
full-budget L-inf sign perturbation. Attacks use the defaults of fgsm_jax.attacks.ATTACKS.

Writes W/attack_sweep.json ({"clean": {"0": acc}, "<attack>": {"<eps>": acc, ...}, ...,
"transfer": {...same, on the target...}, "config": {...}}) and W/attack_sweep.png.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

from fgsm_jax import cli
from fgsm_jax.cli import eps_list_255, fail


def _attack_names(text: str) -> list[str]:
  from fgsm_jax.attacks import ATTACKS
  names = [n.strip() for n in text.split(',') if n.strip()]
  if names == ['all']:
    return list(ATTACKS)
  unknown = [n for n in names if n not in ATTACKS]
  if not names or unknown:
    raise argparse.ArgumentTypeError(
        f"unknown attack {', '.join(map(repr, unknown)) or '(none given)'}; expected 'all' or "
        f"a comma-separated list of {', '.join(ATTACKS)}")
  return list(dict.fromkeys(names))


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.parser(__doc__)
  p.add_argument('--workdir', type=cli.nonempty_path, required=True,
                 help='output folder (attack_sweep.json, attack_sweep.png); also the default '
                      '--checkpoint')
  p.add_argument('--checkpoint', type=pathlib.Path, default=None,
                 help='workdir of the white-box model (train_classifier.py --workdir); '
                      'default: --workdir')
  p.add_argument('--source', type=pathlib.Path, default=None,
                 help='transfer: workdir of the model the attacks run on (default: '
                      '--checkpoint); needs --target')
  p.add_argument('--target', type=pathlib.Path, default=None,
                 help='transfer: workdir of the model the adversarial images are scored on')
  p.add_argument('--attacks', type=_attack_names, default=_attack_names('fgsm,pgd,mifgsm'),
                 help="comma-separated names from fgsm_jax.attacks.ATTACKS, or 'all'")
  p.add_argument('--eps', type=eps_list_255, default=eps_list_255('1,2,4,8'),
                 help='budgets on the 0-255 scale (L-inf eps/255; see above for L2), '
                      'comma-separated, each in [0, 255]')
  p.add_argument('--batch-size', type=int, default=64,
                 help='images per attack batch; the last batch is padded, so one compile '
                      'serves all')
  p.add_argument('--limit', type=int, default=0,
                 help='attack only the first N test images (0: all)')
  p.add_argument('--split', default='test', help='dataset split to attack')
  p.add_argument('--manual-dir', type=pathlib.Path, default=None,
                 help="override the photo folder recorded in the checkpoint's metrics.json")
  p.add_argument('--data-dir', type=pathlib.Path, default=None,
                 help="override the TFDS data dir recorded in the checkpoint's metrics.json")
  p.add_argument('--seed', type=cli.seed, default=0,
                 help='PRNG seed of the randomised attacks (random starts, transformations)')
  args = p.parse_args(argv)
  if args.batch_size <= 0:
    p.error('--batch-size must be positive')
  if args.limit < 0:
    p.error('--limit must be >= 0')
  if args.source is not None and args.target is None:
    p.error('--source needs --target (the model the transferred images are scored on)')
  args.checkpoint = args.checkpoint or args.workdir
  if args.target is not None and args.source is None:
    args.source = args.checkpoint
  return args


def _load_model(workdir: pathlib.Path):
  """(apply_fn, params, config) of a checkpoint, or a one-line error naming it."""
  from fgsm_jax import train
  try:
    return train.load_checkpoint(workdir)
  except FileNotFoundError as e:
    fail(str(e).splitlines()[0])
  except Exception as e:  # a corrupt or incompatible checkpoint: one line, no traceback
    fail(f'{workdir}: cannot load the checkpoint ({type(e).__name__}: '
         f"{str(e).splitlines()[0] if str(e) else ''})")


def _resolved(path: pathlib.Path | None) -> str | None:
  return str(path.resolve()) if path else None


def main(argv=None, *, load_split=None) -> int:
  """Runs the sweep. ``load_split`` replaces fgsm_jax.data.load_split (tests pass a fake)."""
  args = parse_args(argv)
  import numpy as np

  from fgsm_jax import evaluation, figures, io
  from fgsm_jax.attacks import ATTACK_NORMS
  try:  # before the sweep, not after it
    if args.manual_dir is not None:
      cli.check_dir(args.manual_dir, '--manual-dir')
    cli.writable_dir(args.workdir, 'workdir')
  except OSError as e:
    fail(str(e), 2)
  apply_fn, params, config = _load_model(args.checkpoint)
  models = {'white-box': (apply_fn, params, config)}
  if args.target is not None:
    models['source'] = (models['white-box'] if args.source.resolve() == args.checkpoint.resolve()
                        else _load_model(args.source))
    models['target'] = _load_model(args.target)
    for role in ('source', 'target'):
      other = models[role][2]
      if (other.dataset, other.image_size, other.num_classes) != (
          config.dataset, config.image_size, config.num_classes):
        fail(f'{getattr(args, role)}: trained on {other.dataset} at {other.image_size} px with '
             f'{other.num_classes} classes, but {args.checkpoint} on {config.dataset} at '
             f'{config.image_size} px with {config.num_classes}; transfer needs the same data')

  if load_split is None:
    from fgsm_jax.data import load_split
  try:
    manual_dir, data_dir, _ = evaluation.recorded_data_dirs(args.checkpoint, args.manual_dir,
                                                            args.data_dir)
    images, labels = load_split(config.dataset, args.split, manual_dir=manual_dir,
                                data_dir=data_dir)
  except (FileNotFoundError, ValueError) as e:
    fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
  if args.limit:
    images, labels = images[:args.limit], labels[:args.limit]
  if len(images) == 0:
    fail(f'{config.dataset} {args.split}: no images to attack')
  images, labels = np.asarray(images, np.float32), np.asarray(labels, np.int32)
  if images.shape[1:] != (config.image_size, config.image_size, 3):
    fail(f'{config.dataset} {args.split}: images are {images.shape[1:]}, the model takes '
         f'{config.image_size} x {config.image_size} x 3')
  run_config = {
      'attacks': args.attacks, 'eps_255': args.eps,
      'eps_meaning': 'L-inf eps/255; L2 attacks: L2 radius eps/255 * sqrt(H*W*C)',
      'norms': {name: ATTACK_NORMS[name] for name in args.attacks},
      'l2_radius_per_eps_255': float(np.sqrt(np.prod(images.shape[1:]))) / 255.0,
      'checkpoint': _resolved(args.checkpoint), 'model': config.model, 'dataset': config.dataset,
      'split': args.split, 'examples': len(images),
      'batch_size': min(args.batch_size, len(images)), 'seed': args.seed,
      'source': _resolved(args.source), 'target': _resolved(args.target)}
  start = time.perf_counter()

  def save(result):  # after each attack, so a long sweep leaves its finished part behind
    if 'transfer' in result:
      result['transfer'].update(source=_resolved(args.source), target=_resolved(args.target))
    result['config'] = {**run_config, 'seconds': time.perf_counter() - start}
    io.write_json(args.workdir / 'attack_sweep.json', result)

  result = evaluation.attack_sweep(
      models, images, labels, args.attacks,
      args.eps, batch_size=args.batch_size, seed=args.seed,
      label=f'{config.dataset} {args.split}', log=lambda line: print(line, flush=True),
      on_attack=save)
  figures.plot_attack_sweep(result, args.attacks, args.workdir / 'attack_sweep.png')
  print(f"wrote {args.workdir / 'attack_sweep.json'} and {args.workdir / 'attack_sweep.png'}")
  return 0


if __name__ == '__main__':
  sys.exit(main())
