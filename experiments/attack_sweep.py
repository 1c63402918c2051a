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
import functools
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from common import eps_key, eps_list_255, fail  # noqa: E402


def _attack_names(text: str) -> list[str]:
  from fgsm_jax.attacks import ATTACKS
  names = [n.strip() for n in text.split(",") if n.strip()]
  if names == ["all"]:
    return list(ATTACKS)
  unknown = [n for n in names if n not in ATTACKS]
  if not names or unknown:
    raise argparse.ArgumentTypeError(
        f"unknown attack {', '.join(map(repr, unknown)) or '(none given)'}; expected 'all' or "
        f"a comma-separated list of {', '.join(ATTACKS)}")
  return list(dict.fromkeys(names))


def parse_args(argv=None) -> argparse.Namespace:
  from fgsm_jax import cli
  p = cli.parser(__doc__)
  p.add_argument("--workdir", type=cli.nonempty_path, required=True,
                 help="output folder (attack_sweep.json, attack_sweep.png); also the default "
                      "--checkpoint")
  p.add_argument("--checkpoint", type=pathlib.Path, default=None,
                 help="workdir of the white-box model (train_classifier.py --workdir); "
                      "default: --workdir")
  p.add_argument("--source", type=pathlib.Path, default=None,
                 help="transfer: workdir of the model the attacks run on (default: "
                      "--checkpoint); needs --target")
  p.add_argument("--target", type=pathlib.Path, default=None,
                 help="transfer: workdir of the model the adversarial images are scored on")
  p.add_argument("--attacks", type=_attack_names, default=_attack_names("fgsm,pgd,mifgsm"),
                 help="comma-separated names from fgsm_jax.attacks.ATTACKS, or 'all'")
  p.add_argument("--eps", type=eps_list_255, default=eps_list_255("1,2,4,8"),
                 help="budgets on the 0-255 scale (L-inf eps/255; see above for L2), "
                      "comma-separated, each in [0, 255]")
  p.add_argument("--batch-size", type=int, default=64,
                 help="images per attack batch; the last batch is padded, so one compile "
                      "serves all")
  p.add_argument("--limit", type=int, default=0,
                 help="attack only the first N test images (0: all)")
  p.add_argument("--split", default="test", help="dataset split to attack")
  p.add_argument("--manual-dir", type=pathlib.Path, default=None,
                 help="override the photo folder recorded in the checkpoint's metrics.json")
  p.add_argument("--data-dir", type=pathlib.Path, default=None,
                 help="override the TFDS data dir recorded in the checkpoint's metrics.json")
  p.add_argument("--seed", type=cli.seed, default=0,
                 help="PRNG seed of the randomised attacks (random starts, transformations)")
  args = p.parse_args(argv)
  if args.batch_size <= 0:
    p.error("--batch-size must be positive")
  if args.limit < 0:
    p.error("--limit must be >= 0")
  if args.source is not None and args.target is None:
    p.error("--source needs --target (the model the transferred images are scored on)")
  args.checkpoint = args.checkpoint or args.workdir
  if args.target is not None and args.source is None:
    args.source = args.checkpoint
  return args


def _data_dirs(workdir: pathlib.Path, args) -> tuple:
  """Photo and TFDS folders: the flags, else those train_classifier.py recorded."""
  from fgsm_jax import io
  data = {}
  metrics = workdir / "metrics.json"
  if metrics.is_file():
    data = io.read_json(metrics).get("data", {}) or {}
  manual = args.manual_dir or (pathlib.Path(data["manual_dir"]) if data.get("manual_dir")
                               else None)
  data_dir = args.data_dir or (pathlib.Path(data["data_dir"]) if data.get("data_dir") else None)
  return manual, data_dir


def _load_model(workdir: pathlib.Path):
  from fgsm_jax import train
  try:
    return train.load_checkpoint(workdir)
  except FileNotFoundError as e:
    fail(str(e).splitlines()[0])
  except Exception as e:  # a corrupt or incompatible checkpoint: one line, no traceback
    fail(f"{workdir}: cannot load the checkpoint ({type(e).__name__}: "
         f"{str(e).splitlines()[0] if str(e) else ''})")


def _plot(result: dict, attacks: list[str], path: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from fgsm_jax import io
  panels = [("white-box", result)] + ([("transfer", result["transfer"])]
                                       if "transfer" in result else [])
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  for ax, (title, section) in zip(axes[0], panels):
    clean = section["clean"]["0"]
    for name in attacks:
      eps = sorted(float(k) for k in section[name])
      ax.plot([0.0] + eps, [clean] + [section[name][eps_key(e)] for e in eps], marker="o",
              label=name)
    ax.set_xlabel("eps (0-255 scale; L2 attacks: eps/255 * sqrt(HWC))")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title if title == "white-box" else
                 f"transfer: {pathlib.Path(section['source']).name} -> "
                 f"{pathlib.Path(section['target']).name}")
    ax.legend(fontsize=7)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=120)
  plt.close(fig)


def main(argv=None, *, load_split=None) -> int:
  """Runs the sweep. ``load_split`` replaces fgsm_jax.data.load_split (tests pass a fake)."""
  args = parse_args(argv)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from fgsm_jax import io
  from fgsm_jax.attacks import ATTACK_NORMS, ATTACKS

  from fgsm_jax import cli
  try:  # before the sweep, not after it
    if args.manual_dir is not None:
      cli.check_dir(args.manual_dir, "--manual-dir")
    cli.writable_dir(args.workdir, "workdir")
  except OSError as e:
    fail(str(e), 2)
  apply_fn, params, config = _load_model(args.checkpoint)
  models = {"white-box": (apply_fn, params, config)}
  if args.target is not None:
    models["source"] = (models["white-box"] if args.source.resolve() == args.checkpoint.resolve()
                        else _load_model(args.source))
    models["target"] = _load_model(args.target)
    for role in ("source", "target"):
      other = models[role][2]
      if (other.dataset, other.image_size, other.num_classes) != (
          config.dataset, config.image_size, config.num_classes):
        fail(f"{getattr(args, role)}: trained on {other.dataset} at {other.image_size} px with "
             f"{other.num_classes} classes, but {args.checkpoint} on {config.dataset} at "
             f"{config.image_size} px with {config.num_classes}; transfer needs the same data")

  if load_split is None:
    from fgsm_jax.data import load_split
  manual_dir, data_dir = _data_dirs(args.checkpoint, args)
  try:
    images, labels = load_split(config.dataset, args.split, manual_dir=manual_dir,
                                data_dir=data_dir)
  except (FileNotFoundError, ValueError) as e:
    fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
  if args.limit:
    images, labels = images[:args.limit], labels[:args.limit]
  if len(images) == 0:
    fail(f"{config.dataset} {args.split}: no images to attack")
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32)
  if images.shape[1:] != (config.image_size, config.image_size, 3):
    fail(f"{config.dataset} {args.split}: images are {images.shape[1:]}, the model takes "
         f"{config.image_size} x {config.image_size} x 3")
  n = len(images)
  l2_scale = float(np.sqrt(np.prod(images.shape[1:])))

  @jax.jit
  def example_keys(indices):
    # One key per example from its index in the split: results do not depend on batching.
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(args.seed), indices)

  @functools.partial(jax.jit, static_argnums=0)
  def count_correct(f, p, x, y, mask):
    return jnp.sum((jnp.argmax(f(p, x), -1) == y) * mask)

  def correct(model, x, y, mask):
    return float(count_correct(model[0], model[1], x, y, mask))

  batch_size = min(args.batch_size, n)

  def batches():
    """(images, labels, mask, keys) in batches of exactly batch_size (the last padded)."""
    for begin in range(0, n, batch_size):
      idx = np.arange(begin, min(begin + batch_size, n), dtype=np.int32)
      mask = np.zeros(batch_size, np.float32)
      mask[:len(idx)] = 1.0
      idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[0], np.int32)])
      yield (jnp.asarray(images[idx]), jnp.asarray(labels[idx]), jnp.asarray(mask),
             example_keys(jnp.asarray(idx)))

  clean = {role: 0.0 for role in models}
  for x, y, mask, _ in batches():
    for role in clean:
      clean[role] += correct(models[role], x, y, mask)
  result = {"clean": {"0": clean["white-box"] / n}}
  if "target" in models:
    result["transfer"] = {"source": str(args.source.resolve()),
                          "target": str(args.target.resolve()),
                          "clean": {"0": clean["target"] / n},
                          "source_clean": {"0": clean["source"] / n}}
  print(f"{config.dataset} {args.split}: {n} images; clean accuracy "
        + ", ".join(f"{role} {clean[role] / n:.4f}" for role in clean))
  result["config"] = {
      "attacks": args.attacks, "eps_255": args.eps,
      "eps_meaning": "L-inf eps/255; L2 attacks: L2 radius eps/255 * sqrt(H*W*C)",
      "norms": {name: ATTACK_NORMS[name] for name in args.attacks},
      "l2_radius_per_eps_255": l2_scale / 255.0,
      "checkpoint": str(args.checkpoint.resolve()), "model": config.model,
      "dataset": config.dataset, "split": args.split, "examples": n,
      "batch_size": batch_size, "seed": args.seed,
      "source": str(args.source.resolve()) if args.source else None,
      "target": str(args.target.resolve()) if args.target else None,
  }

  start = time.perf_counter()
  for name in args.attacks:
    attack = ATTACKS[name]
    result[name] = {}
    if "transfer" in result:
      result["transfer"][name] = {}
      result["transfer"].setdefault("source_white_box", {})[name] = {}
    for eps_255 in args.eps:
      eps = eps_255 / 255.0 * (l2_scale if ATTACK_NORMS[name] == "l2" else 1.0)
      hits = {"white-box": 0.0, "source": 0.0, "target": 0.0}
      for x, y, mask, keys in batches():
        adv = attack(apply_fn, params, x, y, eps, key=keys)
        hits["white-box"] += correct(models["white-box"], adv, y, mask)
        if "target" in models:
          source = models["source"]
          if source is not models["white-box"]:
            adv = attack(source[0], source[1], x, y, eps, key=keys)
          hits["source"] += correct(source, adv, y, mask)
          hits["target"] += correct(models["target"], adv, y, mask)
      key = eps_key(eps_255)
      result[name][key] = hits["white-box"] / n
      line = f"{name} eps {key}/255: white-box accuracy {hits['white-box'] / n:.4f}"
      if "transfer" in result:
        result["transfer"][name][key] = hits["target"] / n
        result["transfer"]["source_white_box"][name][key] = hits["source"] / n
        line += f", transfer to target {hits['target'] / n:.4f}"
      print(line, flush=True)
    # Written after each attack, so a long sweep leaves its finished part behind.
    result["config"]["seconds"] = time.perf_counter() - start
    io.write_json(args.workdir / "attack_sweep.json", result)

  _plot(result, args.attacks, args.workdir / "attack_sweep.png")
  print(f"wrote {args.workdir / 'attack_sweep.json'} and {args.workdir / 'attack_sweep.png'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
