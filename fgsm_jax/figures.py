"""Figures of the experiments: accuracy against eps, and original | perturbation | adversarial."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # scripts run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fgsm_jax import io  # noqa: E402


def plot_accuracy_vs_eps(curves: Mapping[str, Mapping[float, float]], path: str | os.PathLike,
                         title: str = "Test accuracy under attack") -> None:
  """One line per curve name; x: eps on the 0-255 scale, y: accuracy in [0, 1]."""
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for name, curve in curves.items():
    eps = sorted(curve)
    ax.plot(eps, [curve[e] for e in eps], marker="o", label=name)
  ax.set_xlabel("eps (0-255 scale, L-inf)")
  ax.set_ylabel("test accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.grid(alpha=0.3)
  ax.set_title(title)
  if len(curves) > 1:
    ax.legend(fontsize=8)
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
  +-eps spans the full grey range.
  """
  eps = eps_255 / 255.0
  amplification = 0.5 / eps if eps > 0 else 1.0
  n = len(originals)
  fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False)
  for i in range(n):
    panels = (
        (originals[i], f"original (true {true_names[i]})\npredicted {clean_predictions[i]}"),
        (perturbation_image(originals[i], adversarials[i], amplification),
         f"perturbation x{amplification:.1f}\n(eps = {eps_255:g}/255)"),
        (adversarials[i], f"adversarial\npredicted {adversarial_predictions[i]}"),
    )
    for ax, (img, title) in zip(axes[i], panels):
      ax.imshow(np.clip(img, 0, 1))
      ax.set_title(title, fontsize=8)
      ax.axis("off")
  fig.tight_layout()
  io.save_figure(fig, path, dpi=110)
  plt.close(fig)
  return amplification
