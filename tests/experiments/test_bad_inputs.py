"""Bad command lines and folders for the experiment scripts: each is one line naming the
flag or path and the problem, with a sensible exit status (2: usage or output folder, 1:
data), found before any training or evaluation; and every script's --help reads well."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / 'experiments'
sys.path.insert(0, str(EXPERIMENTS))

SCRIPTS = ['train_classifier', 'fgsm_eval', 'attack_sweep', 'privacy_eval', 'protect_photos',
           'plot_curves', 'roofline', 'first_use_timing', 'protect_timing', 'engine_fingerprint',
           'perceptual_frontier', 'plot_frontier']
# Thin scripts: they import fgsm_jax as installed (no sys.path edits) and their main only
# parses arguments and composes library functions.
THIN = ['train_classifier', 'fgsm_eval', 'attack_sweep', 'plot_curves', 'roofline',
        'first_use_timing', 'protect_photos', 'privacy_eval', 'protect_timing',
        'engine_fingerprint']
MAIN_LINES = 80


def _module(name: str):
  spec = importlib.util.spec_from_file_location(f'bad_inputs_{name}', EXPERIMENTS / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope='module')
def scripts():
  return {name: _module(name) for name in SCRIPTS}


@pytest.fixture()
def afile(tmp_path):
  path = tmp_path / 'afile'
  path.write_text('a regular file, not a folder')
  return path


def _fake_workdir(tmp_path) -> pathlib.Path:
  workdir = tmp_path / 'trained'
  workdir.mkdir()
  (workdir / 'metrics.json').write_text('{"data": {}}')
  return workdir


# (script, argv with {afile}/{tmp}/{trained} placeholders, exit code, words of the last line)
CASES = [
    ('train_classifier', ['--workdir', '{tmp}/w', '--learning-rate', 'nan'], 2,
     "argument --learning-rate: must be a finite number, got 'nan'"),
    ('train_classifier', ['--workdir', '{tmp}/w', '--learning-rate', '-1'], 2,
     'argument --learning-rate: must be in (0, 10]'),
    ('train_classifier', ['--workdir', '{tmp}/w', '--brightness', 'inf'], 2,
     'argument --brightness: must be a finite number'),
    ('train_classifier', ['--workdir', '{tmp}/w', '--epochs', '0'], 2,
     'argument --epochs: must be >= 1'),
    ('train_classifier', ['--workdir', '{tmp}/w', '--seed', '99999999999999999999999'], 2,
     'argument --seed: must be in [0, 4294967295]'),
    ('train_classifier', ['--workdir', ''], 2, 'argument --workdir: empty path'),
    ('train_classifier', ['--workdir', '{tmp}/w', '--manual-dir', '{afile}'], 1,
     '{afile}: --manual-dir is not a folder'),
    ('train_classifier', ['--workdir', '{tmp}/w', '--manual-dir', '{tmp}/missing'], 1,
     '{tmp}/missing: --manual-dir does not exist'),
    ('train_classifier', ['--workdir', '{afile}/w'], 2,
     '{afile}/w: cannot write the workdir'),
    ('fgsm_eval', ['--workdir', '{trained}', '--eps', 'nan'], 2,
     'argument --eps: eps must be a finite number'),
    ('fgsm_eval', ['--workdir', '{trained}', '--eps', '1,inf'], 2,
     'argument --eps: eps must be a finite number'),
    ('fgsm_eval', ['--workdir', '{trained}', '--figure-eps', 'nan'], 2,
     'argument --figure-eps: must be a finite number'),
    ('fgsm_eval', ['--workdir', '{trained}', '--figure-eps', '300'], 2,
     'argument --figure-eps: must be in [0, 255]'),
    ('fgsm_eval', ['--workdir', '{trained}', '--batch-size', '0'], 2,
     'argument --batch-size: must be >= 1'),
    ('fgsm_eval', ['--workdir', '{trained}', '--manual-dir', '{tmp}/missing'], 1,
     '{tmp}/missing: --manual-dir does not exist'),
    ('fgsm_eval', ['--workdir', '{afile}'], 1, '{afile}/metrics.json: not found'),
    ('attack_sweep', ['--workdir', '{tmp}/w', '--eps', 'nan'], 2,
     'argument --eps: eps must be a finite number'),
    ('attack_sweep', ['--workdir', '{tmp}/w', '--seed', '-1'], 2,
     'argument --seed: must be in [0, 4294967295]'),
    ('attack_sweep', ['--workdir', '{tmp}/w', '--manual-dir', '{afile}'], 2,
     '{afile}: --manual-dir is not a folder'),
    ('attack_sweep', ['--workdir', '{afile}/w'], 2, '{afile}/w: cannot write the workdir'),
    ('privacy_eval', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--eps', 'nan'], 2,
     'argument --eps: must be a finite number'),
    ('privacy_eval', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--steps', '0'], 2,
     'argument --steps: must be >= 1'),
    ('privacy_eval', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--seed',
                      '99999999999999999999999'], 2, 'argument --seed: must be in'),
    ('perceptual_frontier', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--config',
                             'a:attack.chroma=2'], 2, '--config a: bad setting'),
    ('perceptual_frontier', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--config',
                             'a:preset=nope'], 2, "--config a: unknown preset 'nope'"),
    ('perceptual_frontier', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--config',
                             'a:eps=4', '--config', 'a:eps=5'], 2, '--config names must differ'),
    ('perceptual_frontier', ['--dataset-dir', '{tmp}', '--workdir', '{tmp}/w', '--config',
                             'a:attack.target_weight=1'], 2,
     'attack.target_weight > 0 needs --targets-dir (the candidate target identities)'),
    ('privacy_eval', ['--dataset-dir', '{afile}', '--workdir', '{tmp}/w'], 1,
     '{afile}: not a folder'),
    ('plot_curves', ['{tmp}', '--out', '{tmp}/x.png'], 1, '{tmp}/fgsm_eval.json: not found'),
    ('plot_frontier', ['{tmp}', '--out', '{tmp}/x.png'], 1,
     '{tmp}/frontier.json: cannot read a frontier run'),
    ('plot_curves', ['{trained}', '--out', ''], 2, 'argument --out: empty path'),
    ('roofline', ['--ceilings', '{afile}'], 2, '{afile}: cannot read ceilings'),
    ('roofline', ['--measure', '--repeats', '0'], 2, 'argument --repeats: must be >= 1'),
]


@pytest.mark.parametrize('script, argv, code, words', CASES,
                         ids=[f"{c[0]}:{' '.join(c[1][-2:])}" for c in CASES])
def test_bad_input_is_one_line_with_a_sensible_exit_status(scripts, tmp_path, afile, script,
                                                           argv, code, words, capsys,
                                                           monkeypatch):
  trained = _fake_workdir(tmp_path)
  fill = {'{afile}': str(afile), '{tmp}': str(tmp_path), '{trained}': str(trained)}

  def sub(text):
    for k, v in fill.items():
      text = text.replace(k, v)
    return text

  # Nothing may train or evaluate before the inputs are checked.
  from fgsm_jax import train
  monkeypatch.setattr(train, 'train', lambda *a, **k: pytest.fail('trained before checks'))
  monkeypatch.setattr(train, 'load_checkpoint',
                      lambda *a, **k: pytest.fail('loaded a model before checks'))
  afile_before = afile.read_bytes()
  with pytest.raises(SystemExit) as e:
    scripts[script].main([sub(a) for a in argv])
  assert e.value.code == code
  err = capsys.readouterr().err.strip().splitlines()
  assert err and 'Traceback' not in '\n'.join(err)
  assert sub(words) in err[-1]
  if code == 1 or 'cannot write' in words or '--manual-dir' in words:
    assert len(err) == 1 and err[0].startswith('error: ')  # one line, no usage text
  assert afile.read_bytes() == afile_before


def test_fgsm_eval_checks_the_workdir_is_writable_before_evaluating(scripts, tmp_path,
                                                                   monkeypatch, capsys):
  """As root a folder cannot be made unwritable, so the write probe is made to fail."""
  import tempfile

  from fgsm_jax import train
  trained = _fake_workdir(tmp_path)

  def denied(*args, **kwargs):
    raise PermissionError(13, 'Permission denied')
  monkeypatch.setattr(tempfile, 'TemporaryFile', denied)
  monkeypatch.setattr(train, 'load_checkpoint',
                      lambda *a, **k: pytest.fail('evaluated before the workdir check'))
  with pytest.raises(SystemExit) as e:
    scripts['fgsm_eval'].main(['--workdir', str(trained)])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f'error: {trained}: cannot write the workdir (Permission denied)']


@pytest.mark.slow
def test_train_classifier_bad_workdir_exits_at_once_as_a_script(tmp_path, afile):
  """The run that trained, printed orbax tracebacks and never exited: now refused first."""
  done = subprocess.run([sys.executable, str(EXPERIMENTS / 'train_classifier.py'),
                         '--workdir', str(afile / 'w'), '--epochs', '1'], capture_output=True,
                        text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert done.returncode == 2
  assert 'Traceback' not in done.stderr
  errors = [l for l in done.stderr.splitlines() if l.startswith('error:')]
  assert errors == [f"error: {afile / 'w'}: cannot write the workdir (Not a directory)"]
  assert done.stdout == ''  # no data loaded, nothing trained


@pytest.mark.parametrize('script', SCRIPTS)
def test_help_starts_with_a_sentence_and_every_option_is_explained(scripts, script, capsys):
  with pytest.raises(SystemExit) as e:
    scripts[script].main(['--help'])
  assert e.value.code == 0
  text = capsys.readouterr().out
  description = text.split('\n\n')[1]
  first = description.splitlines()[0]
  assert first[0].isupper() and first.rstrip().endswith('.'), first
  assert 'default: None' not in text and 'default: []' not in text
  header = '\noptions:\n'
  options = text[text.index(header) + len(header):].splitlines()
  options = options[:next((i for i, l in enumerate(options) if l and not l[0].isspace()),
                          len(options))]
  assert len(options) > 2
  for i, line in enumerate(options):
    match = re.match(r'^  (-[-\w]+.*?)(?:\s{2,}(\S.*))?$', line)
    if not match:
      continue
    following = options[i + 1] if i + 1 < len(options) else ''
    explained = match.group(2) or re.match(r'^\s{20,}\S', following)
    assert explained, f'{script}: {match.group(1)} has no help text'


@pytest.mark.parametrize('script', THIN)
def test_script_is_thin(script):
  import ast
  text = (EXPERIMENTS / f'{script}.py').read_text()
  assert 'sys.path' not in text and 'from common import' not in text
  main = next(node for node in ast.parse(text).body
              if isinstance(node, ast.FunctionDef) and node.name == 'main')
  assert main.end_lineno - main.lineno + 1 <= MAIN_LINES, f'{script}.main is too long'
