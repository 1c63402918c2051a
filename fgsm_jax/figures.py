"""Figures of the experiments: accuracy against eps (one model, or a sweep of attacks with its
transfer panel), and original | perturbation | adversarial."""
from __future__ import annotations

import os
import pathlib
from typing import Mapping, Sequence

import matplotlib

matplotlib.use('Agg')  # scripts run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fgsm_jax import io  # noqa: E402
from fgsm_jax.io import eps_key  # noqa: E402


def plot_accuracy_vs_eps(curves: Mapping[str, Mapping[float, float]], path: str | os.PathLike,
                         title: str = 'Test accuracy under attack') -> None:
  """One line per curve name; x: eps on the 0-255 scale, y: accuracy in [0, 1]."""
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for name, curve in curves.items():
    eps = sorted(curve)
    ax.plot(eps, [curve[e] for e in eps], marker='o', label=name)
  ax.set_xlabel('eps (0-255 scale, L-inf)')
  ax.set_ylabel('test accuracy')
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title(title)
  if len(curves) > 1:
    ax.legend(fontsize=8)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=120)
  plt.close(fig)


def plot_attack_sweep(result: Mapping, attacks: Sequence[str], path: str | os.PathLike) -> None:
  """Accuracy against eps per attack (`evaluation.attack_sweep`'s result): a white-box panel,
  and a transfer panel (source -> target) when the result has one."""
  panels = [('white-box', result)] + ([('transfer', result['transfer'])]
                                       if 'transfer' in result else [])
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  for ax, (title, section) in zip(axes[0], panels):
    clean = section['clean']['0']
    for name in attacks:
      eps = sorted(float(k) for k in section[name])
      ax.plot([0.0] + eps, [clean] + [section[name][eps_key(e)] for e in eps], marker='o',
              label=name)
    ax.set_xlabel('eps (0-255 scale; L2 attacks: eps/255 * sqrt(HWC))')
    ax.set_ylabel('accuracy')
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title if title == 'white-box' else
                 f"transfer: {pathlib.Path(section['source']).name} -> "
                 f"{pathlib.Path(section['target']).name}")
    ax.legend(fontsize=7)
  fig.tight_layout()
  io.save_figure(fig, path, dpi=120)
  plt.close(fig)


def perturbation_image(original: np.ndarray, adversarial: np.ndarray,
                       amplification: float) -> np.ndarray:
  """The perturbation drawn faithfully: 0.5 + amplification * (adv - x), clipped to [0, 1].

  Mid-grey means unchanged; brighter means the attack added to that channel, darker that it
  subtracted. (The original notebook drew an integer cast of the sign map instead.)
  """
  return np.clip(0.5 + amplification * (adversarial - original), 0.0, 1.0)


def plot_triplets(originals: np.ndarray, adversarials: np.ndarray,
                  clean_predictions: Sequence[str], adversarial_predictions: Sequence[str],
                  true_names: Sequence[str], eps_255: float, path: str | os.PathLike) -> float:
  """Rows of original | perturbation | adversarial, each titled with the predicted identity.

  Returns the amplification used for the perturbation column: 0.5 / eps, so a change of
  +-eps spans the full grey range. A band of rows / columns at the bottom / right that no
  example changes (for the original CNN at 160 x 160: pixels 153-159, which its pooling
  never reads, so their gradient is 0) is named in a caption under the figure.
  """
  eps = eps_255 / 255.0
  amplification = 0.5 / eps if eps > 0 else 1.0
  n = len(originals)
  fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False)
  for i in range(n):
    panels = (
        (originals[i], f'original (true {true_names[i]})\npredicted {clean_predictions[i]}'),
        (perturbation_image(originals[i], adversarials[i], amplification),
         f'perturbation x{amplification:.1f}\n(eps = {eps_255:g}/255)'),
        (adversarials[i], f'adversarial\npredicted {adversarial_predictions[i]}'),
    )
    for ax, (img, title) in zip(axes[i], panels):
      ax.imshow(np.clip(img, 0, 1))
      ax.set_title(title, fontsize=8)
      ax.axis('off')
  note = _unchanged_band_note(np.asarray(originals), np.asarray(adversarials))
  if note:
    fig.text(0.5, 0.005, note, ha='center', va='bottom', fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.35 / (2.6 * n), 1, 1))
  else:
    fig.tight_layout()
  io.save_figure(fig, path, dpi=110)
  plt.close(fig)
  return amplification


def _trailing_zero(v: np.ndarray) -> int:
  """How many entries at the end of a 1-D boolean array are True."""
  return int(len(v) - np.flatnonzero(~v)[-1] - 1) if (~v).any() else len(v)


def _unchanged_band_note(originals: np.ndarray, adversarials: np.ndarray) -> str:
  """A caption naming the bottom rows / right columns that no example's attack changed."""
  same = np.all(originals == adversarials, axis=(0, 3))  # H x W, over examples and channels
  h, w = same.shape
  rows, cols = _trailing_zero(same.all(axis=1)), _trailing_zero(same.all(axis=0))
  if rows == h or cols == w:  # nothing changed at all: no band to explain
    return ''
  parts = []
  if cols:
    parts.append(f'columns {w - cols}-{w - 1} (right)')
  if rows:
    parts.append(f'rows {h - rows}-{h - 1} (bottom)')
  if not parts:
    return ''
  return (f"Grey band in the perturbations: {' and '.join(parts)} are unchanged in every "
          'example; the model never reads them (its pooling drops them), so their gradient is 0.')
