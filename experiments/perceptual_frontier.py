#!/usr/bin/env python
"""Protection against visibility: one preset's variants on one set of probes, side by side.

  python experiments/perceptual_frontier.py --dataset-dir ../shared/datasets/gt_db \\
      --workdir runs/frontier --people-from 1 --people 25 --photos-per-person 1 \\
      --protocol whitebox --preset default \\
      --config 'uniform4:eps=4;eps_ladder=[];texture_sd=0;attack.ssim_weight=0' \\
      --config 'luma4:eps=4;eps_ladder=[];texture_sd=0;attack.ssim_weight=0;attack.chroma=0'

Takes every flag of fgsm-jax-eval (experiments/privacy_eval.py) (probes, gallery, --preset and --set for the
base, --protocol, --seed) and any number of ``--config NAME:SETTINGS``, SETTINGS being
``--set``'s FIELD=VALUE separated by ';'. The galleries, the probes' clean faces and their
JPEG 75 / 50 references are made once; then each config protects every probe (per attack
set of --protocol) and is judged as privacy_eval judges (PSR per recognizer as saved, after
JPEG 75 and after halving) and by what a person sees (face SSIMULACRA2, LPIPS, CIEDE2000:
mean and worst tenth, beside the JPEG references). W/frontier.json is rewritten after each
config (atomically), so an interrupted run keeps the configs it finished; one line per
config and attack set is printed.
"""
from __future__ import annotations

import sys

from fgsm_jax.apps import privacy_eval  # the same probes, judges and reports
from fgsm_jax.cli import fail, load_protection


def split_configs(argv: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
  """(configs [(name, settings)], the other arguments) from the command line."""
  configs, rest, i = [], [], 0
  while i < len(argv):
    if argv[i] == '--config' or argv[i].startswith('--config='):
      if argv[i] == '--config':
        if i + 1 >= len(argv):
          fail('--config needs NAME:SETTINGS', 2)
        text, i = argv[i + 1], i + 2
      else:
        text, i = argv[i].split('=', 1)[1], i + 1
      name, sep, settings = text.partition(':')
      if not name.strip():
        fail(f'--config {text!r}: expected NAME:FIELD=VALUE;FIELD=VALUE...', 2)
      configs.append((name.strip(), [s.strip() for s in settings.split(';') if s.strip()]))
    else:
      rest.append(argv[i])
      i += 1
  if len({n for n, _ in configs}) != len(configs):
    fail('--config names must differ', 2)
  return configs, rest


def configured(args, configs):
  """{name: Preset} of every --config, checked before any model is loaded (exit 2 on a bad
  one): the base is --preset with --eps/--steps/--attack/--set, unless a config's first
  setting is preset=NAME."""
  from fgsm_jax.protect.presets import PRESETS, with_fields, with_overrides
  try:
    base = with_fields(with_overrides(PRESETS[args.preset], eps=args.eps, steps=args.steps,
                                      attack=args.attack), args.set)
  except ValueError as e:
    fail(str(e), 2)
  presets = {}
  for name, settings in configs:  # every config checked before any photo is attacked
    # 'preset=NAME' first picks another base preset (as listed; no --eps/--steps overrides).
    start = base
    if settings and settings[0].startswith('preset='):
      which = settings[0].split('=', 1)[1]
      if which not in PRESETS:
        fail(f'--config {name}: unknown preset {which!r}; expected one of {", ".join(PRESETS)}', 2)
      start, settings = PRESETS[which], settings[1:]
    try:
      presets[name] = with_fields(start, settings)
    except ValueError as e:
      fail(f'--config {name}: {e}', 2)
  return presets


def main(argv=None) -> int:
  configs, rest = split_configs(list(sys.argv[1:] if argv is None else argv))
  args = privacy_eval.parse_args(rest)
  if not configs:
    configs = [('base', [])]
  presets = configured(args, configs)
  privacy_eval.check_targets(args, presets.values())
  import numpy as np
  from fgsm_jax import cli, io
  from fgsm_jax.protect import evaluate
  gallery_photos, probes, _, _, _ = privacy_eval._probes(args)  # pylint: disable=protected-access
  try:
    cli.writable_dir(args.workdir, 'workdir')
  except OSError as e:
    fail(str(e), 2)
  judges = args.recognizers
  base, recognizers, models = load_protection(args, judges)
  try:
    galleries = evaluate.build_galleries(gallery_photos, models, judges)
  except ValueError as e:
    fail(f'{args.dataset_dir}: {e}')
  subjects, _ = privacy_eval._subjects(probes, models, judges)  # pylint: disable=protected-access
  if not subjects:
    fail('no probe with a face')
  candidates = privacy_eval.target_candidates(args, models, judges)
  out = {'dataset_dir': str(args.dataset_dir), 'probes': len(subjects), 'seed': args.seed,
         'base_preset': base.name, 'base_settings': args.set, 'judges': list(judges),
         'configs': []}
  root = args.workdir
  for name, settings in configs:
    for attacked in evaluate.attack_sets(judges, args.protocol):
      args.workdir = root / name
      records, skipped = privacy_eval._run_attack_set(  # pylint: disable=protected-access
          args, attacked, presets[name], recognizers, models, galleries, subjects,
          candidates=candidates)
      if not records:
        continue
      summary = evaluate.summarize_judged(records)
      seen = privacy_eval.perceptual_summary(records)
      row = {'name': name, 'settings': settings, 'attacked': list(attacked),
             'psr': {deg: {n: summary[deg][n]['psr'] for n in judges} for deg in summary},
             'perceptual': seen, 'skipped': skipped,
             # What the command itself would write: a face its own check still finds
             # recognised is refused there (kept here as .unverified.png, and judged).
             'written': float(np.mean([bool(r['verified']) for r in records])),
             'seconds_per_photo': float(np.median([r['seconds'] for r in records]))}
      out['configs'].append(row)
      io.write_json(root / 'frontier.json', out)
      shown = [d for d in ('none', 'jpeg75', 'resize_half') if d in row['psr']]
      psr = ' '.join(f'{n} ' + '/'.join(f'{row["psr"][d][n]:.2f}' for d in shown)
                     for n in judges)
      p = seen['protected']
      print(f'FRONTIER {name} [{"+".join(attacked)}] PSR ({"/".join(shown)}) {psr}; '
            f'SSIMULACRA2 {p["ssimulacra2"]["mean"]:.1f} (worst {p["ssimulacra2"]["worst_tenth"]:.1f}; '
            f'JPEG 50 {seen["jpeg50"]["ssimulacra2"]["mean"]:.1f}), LPIPS {p["lpips"]["mean"]:.4f} '
            f'(JPEG 50 {seen["jpeg50"]["lpips"]["mean"]:.4f}), dE00 {p["ciede2000_mean"]["mean"]:.2f}, '
            f'SSIM {p["ssim"]["mean"]:.3f}, written {row["written"]:.2f}, '
            f'{row["seconds_per_photo"]:.2f} s', flush=True)
  print(f'wrote {root / "frontier.json"}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
