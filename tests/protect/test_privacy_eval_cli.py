"""fgsm-jax-eval (fgsm_jax/apps/privacy_eval.py) on a tiny folder-per-identity set of GT
photos (links)."""
from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from fgsm_jax import train
from fgsm_jax.data import images
from fgsm_jax.apps import privacy_eval
from fgsm_jax.protect import recognizer



@pytest.fixture(scope='module')
def script():
  return privacy_eval


@pytest.fixture(scope='module')
def cli(script):
  return script.main


@pytest.fixture
def dataset(gt_dir, link_dataset):
  """(root, people, n) -> a folder-per-identity set of links to GT photos 01..n."""
  def make(root: pathlib.Path, people=('s01', 's02'), n=6) -> pathlib.Path:
    return link_dataset(gt_dir, root, people, [f'{k:02d}.jpg' for k in range(1, n + 1)])
  return make


@pytest.mark.slow
def test_privacy_eval_writes_the_figures(cli, dataset, tmp_path, capsys):
  data = dataset(tmp_path / 'data')
  # An untrained GT classifier: exercises the transfer path (its accuracy is chance).
  cfg = train.TrainConfig(dataset='gt', model='cnn', num_classes=50)
  state = train.create_train_state(jax.random.key(0), cfg)
  train.save_checkpoint(tmp_path / 'clf', state.params, cfg)
  work = tmp_path / 'work'
  rc = cli(['--dataset-dir', str(data), '--workdir', str(work), '--people', '1',
            '--preset', 'fast', '--steps', '4', '--classifier', str(tmp_path / 'clf')])
  assert rc == 0
  out = json.loads((work / 'privacy_eval.json').read_text())
  assert (work / 'privacy_vs_quality.png').stat().st_size > 1000
  assert out['people'] == 1 and out['gallery_people'] == 2 and out['gallery_photos'] == 10
  assert out['judges'] == ['dlib', 'mobileface']
  assert {n: c['rank1'] for n, c in out['clean'].items()} == {'dlib': 1.0, 'mobileface': 1.0}
  # White-box (both attacked), then each recognizer left out in turn.
  runs = {'+'.join(r['attacked']): r for r in out['runs']}
  assert list(runs) == ['dlib+mobileface', 'mobileface', 'dlib']
  table = out['table']
  assert table['dlib']['whitebox']['attacked'] == ['dlib', 'mobileface']
  assert table['dlib']['leave_one_out']['attacked'] == ['mobileface']
  assert table['mobileface']['leave_one_out']['attacked'] == ['dlib']
  for run in runs.values():
    assert len(run['probes']) == 1  # photo 06 of s01
    assert pathlib.Path(run['probes'][0]['protected_file']).is_file()
    for deg in ('none', 'jpeg75', 'resize_half'):
      for n in ('dlib', 'mobileface'):
        p = run['summary'][deg][n]
        assert p['probes'] == 1 and p['psr'] == pytest.approx(1 - p['rank1'])
        assert 0 < p['mean_face_ssim'] < 1 and 0 < p['mean_ssim'] < 1
    assert run['summary']['none']['dlib']['max_max_change'] <= out['eps'] + 0.5
    assert run['transfer'][0]['clean']['probes'] == 1
    # What a person sees, beside the JPEG re-saves of the same face it reads against.
    seen = run['perceptual']
    assert seen['protected']['ssimulacra2']['n'] == 1
    assert seen['protected']['ssimulacra2']['mean'] < 100 and seen['protected']['lpips']['mean'] > 0
    assert seen['jpeg75']['ssimulacra2']['mean'] > seen['jpeg50']['ssimulacra2']['mean']
    assert run['probes'][0]['perceptual']['ssimulacra2'] == seen['protected']['ssimulacra2']['mean']
  assert table['dlib']['whitebox']['perceptual'] == runs['dlib+mobileface']['perceptual']
  # Each attack moves what it attacks, as that recognizer's judge sees it on the saved file.
  # Measured (distance from the clean face; an attack that did nothing gives ~0): dlib alone
  # 0.65 for dlib; MobileFace alone 0.35 for MobileFace; both 0.52 (dlib) and 0.30
  # (MobileFace); the one left out 0.15 (dlib) and 0.035 (MobileFace).
  judged = lambda run, n: run['probes'][0]['judged']['none']['judges'][n]['distance']
  assert judged(runs['dlib'], 'dlib') > 0.4
  assert judged(runs['mobileface'], 'mobileface') > 0.2
  assert judged(runs['dlib+mobileface'], 'dlib') > 0.35
  assert judged(runs['dlib+mobileface'], 'mobileface') > 0.2
  # The evaluation reports the recognizer left out honestly: far less moved than attacked.
  assert judged(runs['dlib'], 'mobileface') < 0.5 * judged(runs['mobileface'], 'mobileface')
  printed = capsys.readouterr().out
  assert 'whitebox (attack: dlib+mobileface)' in printed
  assert 'face SSIMULACRA2' in printed and '(worst tenth' in printed and 'JPEG 50' in printed


def test_missing_dataset_is_one_line(cli, tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    cli(['--dataset-dir', str(tmp_path / 'nope'), '--workdir', str(tmp_path / 'w')])
  assert e.value.code == 1
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'does not exist' in err


@pytest.mark.slow
def test_person_photos_come_after_the_probes_and_reach_the_attack(cli, dataset, tmp_path,
                                                                   monkeypatch):
  from fgsm_jax.protect import files
  data = dataset(tmp_path / 'data', people=('s01', 's02'), n=9)
  given = []
  protect_file = files.protect_file

  def recording(*args, person=(), **kwargs):
    given.append(list(person))
    return protect_file(*args, person=person, **kwargs)

  monkeypatch.setattr(files, 'protect_file', recording)
  base = ['--dataset-dir', str(data), '--people', '1', '--photos-per-person', '1',
          '--preset', 'fast', '--steps', '2', '--recognizers', 'dlib', '--protocol', 'whitebox']
  assert cli([*base, '--workdir', str(tmp_path / 'work'), '--person-photos', '2']) == 0
  assert cli([*base, '--workdir', str(tmp_path / 'alone')]) == 0
  out = json.loads((tmp_path / 'work' / 'privacy_eval.json').read_text())
  # Photos 07 and 08 of s01 (after the gallery, 01-05, and the probe, 06); none without.
  assert out['person_photos'] == {'s01': 2}
  assert out['runs'][0]['probes'][0]['photo'].endswith('06.jpg')
  assert [len(p) for p in given] == [2, 0]
  want = [recognizer.describe(images.load_rgb(data / 's01' / f'{k:02d}.jpg'))[0]
          .descriptor_of('dlib') for k in (7, 8)]
  np.testing.assert_allclose([f.descriptor_of('dlib') for f in given[0]], want, atol=1e-6)


def test_person_photos_without_photos_per_person_is_a_bad_flag(cli, tmp_path, capsys):
  # Without --photos-per-person every photo after the gallery is a probe: none is left.
  with pytest.raises(SystemExit) as e:
    cli(['--dataset-dir', str(tmp_path), '--workdir', str(tmp_path / 'w'),
         '--person-photos', '3'])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and '--photos-per-person' in err


def test_attack_sets_of_each_protocol():
  from fgsm_jax.protect import evaluate
  three = ('dlib', 'mobileface', 'facenet')
  assert evaluate.attack_sets(three, 'whitebox') == [three]
  assert evaluate.attack_sets(three, 'leave-one-out') == [
      ('mobileface', 'facenet'), ('dlib', 'facenet'), ('dlib', 'mobileface')]
  assert evaluate.attack_sets(three, 'one-to-one') == [('dlib',), ('mobileface',), ('facenet',)]
  assert len(evaluate.attack_sets(three, 'all')) == 7
  # With two, leaving one out is attacking the other alone: attacked once.
  assert evaluate.attack_sets(('dlib', 'mobileface'), 'all') == [
      ('dlib', 'mobileface'), ('mobileface',), ('dlib',)]
  with pytest.raises(ValueError, match='one-to-one'):
    evaluate.attack_sets(three, 'pairs')


def _run(attacked, judges, degradations, psr):
  """A run of privacy_eval's JSON with every judge's PSR ``psr[judge]`` under each
  degradation."""
  stats = lambda n: {'psr': psr[n], 'rank1': 1 - psr[n], 'no_face': 0.0,
                     'verification_failure': psr[n] / 2, 'mean_face_ssim': 0.95,
                     'min_face_ssim': 0.9, 'mean_ssim': 0.99, 'mean_face_psnr': 40.0}
  seen = {'mean': 80.0, 'worst_tenth': 70.0, 'n': 1}
  perceptual = {k: {'ssimulacra2': seen, 'lpips': seen, 'ciede2000_mean': seen}
                for k in ('protected', 'jpeg75', 'jpeg50')}
  return {'attacked': list(attacked),
          'summary': {deg: {n: stats(n) for n in judges} for deg in degradations},
          'perceptual': perceptual, 'seconds_per_photo': {'mean': 2.0, 'median': 2.0}}


def test_the_table_gives_every_protocol_per_judge_and_degradation(script, capsys):
  module = script
  judges = ('dlib', 'mobileface', 'facenet')
  degs = ('none', 'jpeg50', 'median3')
  psr = {'dlib': 0.5, 'mobileface': 0.25, 'facenet': 0.75}
  from fgsm_jax.protect import evaluate
  runs = [_run(s, judges, degs, psr) for s in evaluate.attack_sets(judges, 'all')]
  table = module._table(runs, judges)
  for n in judges:
    assert table[n]['whitebox']['attacked'] == list(judges)
    assert table[n]['leave_one_out']['attacked'] == [m for m in judges if m != n]
    assert set(table[n]['one_to_one']) == set(judges)  # the diagonal: white-box alone
    for kind in ('whitebox', 'leave_one_out'):
      for deg in degs:
        row = table[n][kind][deg]
        assert row['psr'] == psr[n] and row['verification_failure'] == psr[n] / 2
      assert table[n][kind]['seconds_per_photo']['median'] == 2.0
      assert table[n][kind]['perceptual']['protected']['ssimulacra2']['mean'] == 80.0
  module._print_table({n: {'rank1': 1.0, 'probes': 4} for n in judges}, table, degs)
  out = capsys.readouterr().out
  assert 'leave_one_out (attack: mobileface+facenet): PSR none 50.0%, jpeg50 50.0%' in out
  assert 'verification failure 25.0%' in out
  assert 'one-to-one PSR, median3' in out and 'one-to-one verification failure, none' in out
  # The matrix: one row per recognizer attacked alone, one column per judge.
  row = next(l for l in out.splitlines() if l.split()[:1] == ['facenet'] and '%' in l)
  assert row.split()[1:] == ['50.0%', '25.0%', '75.0%']


def test_degradations_flag_takes_the_defences_by_name(script, tmp_path, capsys):
  module = script
  base = ['--dataset-dir', str(tmp_path), '--workdir', str(tmp_path / 'w')]
  assert module.parse_args(base).degradations == ('none', 'jpeg75', 'resize_half', 'jpeg50',
                                                  'median3', 'blur1')
  assert module.parse_args(base + ['--degradations', 'blur1,jpeg50']).degradations == (
      'none', 'blur1', 'jpeg50')
  assert module.parse_args(base + ['--protocol', 'one-to-one']).protocol == 'one-to-one'
  with pytest.raises(SystemExit) as e:
    module.parse_args(base + ['--degradations', 'jpeg50,sharpen'])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert 'sharpen' in err[-1] and 'median3' in err[-1]




@pytest.mark.slow
def test_each_probe_is_pulled_towards_the_farthest_target_by_the_attacked(
    cli, dataset, orl_dir, link_dataset, tmp_path, monkeypatch):
  from fgsm_jax.protect import files, targets
  data = dataset(tmp_path / 'data', people=('s01', 's02'), n=6)
  orl = link_dataset(orl_dir, tmp_path / 'orl', ('s1', 's2', 's3'), ['1.pgm', '2.pgm'])
  given = []
  protect_file = files.protect_file

  def recording(*args, target_identity=None, **kwargs):
    given.append(target_identity)
    return protect_file(*args, target_identity=target_identity, **kwargs)

  monkeypatch.setattr(files, 'protect_file', recording)
  assert cli(['--dataset-dir', str(data), '--workdir', str(tmp_path / 'work'), '--people', '1',
              '--preset', 'fast', '--steps', '2', '--recognizers', 'dlib,mobileface',
              '--protocol', 'leave-one-out', '--targets-dir', str(orl), '--target-photos', '2',
              '--set', 'attack.target_weight=1.0']) == 0
  out = json.loads((tmp_path / 'work' / 'privacy_eval.json').read_text())
  # Each attack set (one recognizer attacked) gets the candidate farthest by that one.
  faces = {who: [recognizer.describe(images.load_rgb(orl / who / f'{k}.pgm'),
                                     recognizers=('dlib', 'mobileface'))[0] for k in (1, 2)]
           for who in ('s1', 's2', 's3')}
  candidates = {w: targets.identity_descriptors(f, ('dlib', 'mobileface'))
                for w, f in faces.items()}
  probe = recognizer.describe(images.load_rgb(data / 's01' / '06.jpg'),
                              recognizers=('dlib', 'mobileface'))[0]
  for run, got in zip(out['runs'], given):
    attacked = run['attacked']
    want = targets.farthest(probe, candidates, attacked)
    assert run['probes'][0]['target'] == want
    assert list(got) == attacked
    for n in attacked:
      np.testing.assert_allclose(got[n], candidates[want][n], atol=1e-5)


def test_targets_are_checked_before_any_photo_is_attacked(cli, dataset, tmp_path, capsys):
  data = dataset(tmp_path / 'data', people=('s01',), n=6)
  base = ['--dataset-dir', str(data), '--workdir', str(tmp_path / 'w'), '--preset', 'fast',
          '--recognizers', 'dlib', '--protocol', 'whitebox']
  with pytest.raises(SystemExit) as e:  # a weight and nothing to pull towards
    cli([*base, '--set', 'attack.target_weight=1.0'])
  assert e.value.code == 2
  assert '--targets-dir' in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:  # the gallery's own people as targets
    cli([*base, '--set', 'attack.target_weight=1.0', '--targets-dir', str(data)])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'the gallery does not hold' in err
