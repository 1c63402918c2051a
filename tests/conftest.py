"""Shared fixtures: where the real face datasets are, and how a missing one is treated.

Tests find the datasets through ``FGSM_JAX_DATASETS`` (a folder holding ``gt_db/`` and
``orl_faces/``), else ``../shared/datasets`` beside the checkout. Where neither holds the
dataset a test needs, the test is skipped with the reason -- except under CI (``CI=true``),
where a missing dataset is a failure: CI must exercise the real photos.
"""
from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def datasets_root() -> pathlib.Path:
  env = os.environ.get("FGSM_JAX_DATASETS")
  if env:
    return pathlib.Path(env)
  return REPO.parent / "shared" / "datasets"


def _dataset(name: str) -> pathlib.Path:
  path = datasets_root() / name
  if path.is_dir() and any(path.iterdir()):
    return path
  reason = f"dataset {name!r} not found at {path} (set FGSM_JAX_DATASETS)"
  if os.environ.get("CI", "").lower() == "true":
    pytest.fail(reason + "; CI requires it")
  pytest.skip(reason)


@pytest.fixture(scope="session")
def gt_dir() -> pathlib.Path:
  """The Georgia Tech faces: one folder per person (s01..s50), 15 JPEGs each."""
  return _dataset("gt_db")


@pytest.fixture(scope="session")
def orl_dir() -> pathlib.Path:
  """The ORL faces: one folder per person (s1..s40), 10 PGMs each."""
  return _dataset("orl_faces")
