"""The TFDS builders gt_faces and orl_faces, on generated folders and on a few real photos."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from fgsm_jax.data import detect, face_builder, gt_faces, orl_faces
from fgsm_jax.data.face_builder import FaceConfig, split_photos
from fgsm_jax.data.images import DatasetError, load_rgb


def _read(builder, split: str) -> dict[str, np.ndarray]:
  return tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))


def _build(builder_cls, manual_dir, data_dir, config=None):
  builder = builder_cls(data_dir=str(data_dir), config=config)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _bright_box(rgb: np.ndarray):
  """Stand-in detector: 'finds' the bright square the generated photos have, if any."""
  ys, xs = np.nonzero(rgb[:, :, 1] > 200)
  if ys.size == 0:
    return None
  return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())  # inclusive, as dlib's


# Generated GT-like folder: 2 people x 15 photos; one corrupt, one with no 'face'.
CORRUPT, FACELESS = 's01/04.jpg', 's02/11.jpg'


def _make_gt_like(root):
  rng = np.random.default_rng(0)
  for person in ('s01', 's02'):
    (root / person).mkdir(parents=True)
    for i in range(1, 16):
      key = f'{person}/{i:02d}.jpg'
      rgb = rng.integers(0, 100, (48, 64, 3), dtype=np.uint8)
      if key != FACELESS:
        top, left = rng.integers(0, 20), rng.integers(0, 30)
        rgb[top:top + 24, left:left + 24, 1] = 255
      Image.fromarray(rgb).save(root / key, quality=95)
  (root / CORRUPT).write_bytes(b'\xff\xd8 not really a jpeg')
  (root / 'README').write_text('generated faces')
  (root / 's01' / 'notes.txt').write_text('not an image')


@pytest.fixture(scope='module')
def synthetic_gt(tmp_path_factory):
  root = tmp_path_factory.mktemp('gt_like')
  _make_gt_like(root / 'gt_db')  # As unzipped into the manual folder.
  config = FaceConfig(name='synthetic', identities=('s01', 's02'), face_finder=_bright_box)
  builder = _build(gt_faces.GtFaces, root, tmp_path_factory.mktemp('tfds'), config)
  return root / 'gt_db', config, builder


def test_synthetic_gt_builds_and_reports_skips(synthetic_gt):
  root, config, builder = synthetic_gt
  train, test = split_photos(root, config.identities, config.seed, 10, 5)
  assigned = {'train': [p.key for p in train], 'test': [p.key for p in test]}
  skipped = builder.info.metadata['skipped']
  for split in ('train', 'test'):
    data = _read(builder, split)
    photos = sorted(p.decode() for p in data['photo'])
    dropped = {CORRUPT, FACELESS} & set(assigned[split])
    assert photos == sorted(set(assigned[split]) - dropped)
    assert skipped[split]['photos'] == len(assigned[split]) == (20 if split == 'train' else 10)
    assert skipped[split]['written'] == len(photos)
    assert skipped[split]['unreadable'] == [k for k in assigned[split] if k == CORRUPT]
    assert skipped[split]['no_face'] == [k for k in assigned[split] if k == FACELESS]
    assert data['image'].shape == (len(photos), 160, 160, 3)
    assert data['image'].dtype == np.uint8
    for photo, label, image in zip(data['photo'], data['label'], data['image']):
      photo = photo.decode()
      assert label == config.identities.index(photo.split('/')[0])
      rgb = load_rgb(root / photo)
      np.testing.assert_array_equal(image, detect.crop_face(rgb, _bright_box(rgb)))
  assert builder.info.features['label'].names == ['s01', 's02']


def test_synthetic_gt_skip_report_survives_reload(synthetic_gt):
  _, config, builder = synthetic_gt
  reloaded = gt_faces.GtFaces(data_dir=builder.data_dir_root, config=config)
  skipped = reloaded.info.metadata['skipped']
  assert sorted(skipped['train']['unreadable'] + skipped['test']['unreadable']) == [CORRUPT]
  assert sorted(skipped['train']['no_face'] + skipped['test']['no_face']) == [FACELESS]
  assert reloaded.info.splits['train'].num_examples + reloaded.info.splits['test'].num_examples == 28


def test_skips_are_logged_one_line_each(tmp_path, caplog):
  _make_gt_like(tmp_path / 'man')
  config = FaceConfig(name='logged', identities=('s01', 's02'), face_finder=_bright_box)
  with caplog.at_level(logging.WARNING, logger='fgsm_jax.data'):
    _build(gt_faces.GtFaces, tmp_path / 'man', tmp_path / 'tfds', config)
  ours = [r.getMessage() for r in caplog.records if r.name == 'fgsm_jax.data']
  assert all('\n' not in m for m in ours)
  assert any(str(tmp_path / 'man' / CORRUPT) in m and 'dropped' in m for m in ours), ours
  assert any(str(tmp_path / 'man' / FACELESS) in m and 'no face found' in m for m in ours), ours
  assert any('without a face found' in m for m in ours), ours  # The per-split summary.


def test_split_is_seeded_per_person(tmp_path):
  _make_gt_like(tmp_path)
  names = ('s01', 's02')
  train, test = split_photos(tmp_path, names, 0, 10, 5)
  again = split_photos(tmp_path, names, 0, 10, 5)
  assert ([p.key for p in train], [p.key for p in test]) == tuple(
      [p.key for p in s] for s in again)
  assert len(train) == 20 and len(test) == 10
  assert set(p.key for p in train).isdisjoint(p.key for p in test)
  other, _ = split_photos(tmp_path, names, 1, 10, 5)
  assert set(p.key for p in other) != set(p.key for p in train)
  # A person's split does not depend on who else is in the folder.
  (tmp_path / 's02').rename(tmp_path / 'moved')
  alone, _ = split_photos(tmp_path, ('s01', 'moved'), 0, 10, 5)
  assert [p.key for p in alone if p.identity == 's01'] == [
      p.key for p in train if p.identity == 's01']


def test_unknown_identity_folder(tmp_path):
  _make_gt_like(tmp_path)
  with pytest.raises(DatasetError, match='identity folder.*s02.*not among'):
    split_photos(tmp_path, ('s01', 's03'), 0, 10, 5)


def test_orl_missing_or_empty_manual_dir(tmp_path):
  (tmp_path / 'empty').mkdir()
  for manual in ('missing', 'empty'):
    with pytest.raises(DatasetError) as err:
      _build(orl_faces.OrlFaces, tmp_path / manual, tmp_path / 'tfds')
    assert '\n' not in str(err.value) and str(tmp_path / manual) in str(err.value)
    assert 'missing or empty' in str(err.value)
  assert not orl_faces.OrlFaces(data_dir=str(tmp_path / 'tfds')).is_prepared()


def test_gt_without_data_or_network(tmp_path, monkeypatch):
  # Port 9 (discard) on localhost refuses at once: stands in for being offline.
  monkeypatch.setattr(gt_faces.GtFaces, 'DOWNLOAD_URL', 'http://127.0.0.1:9/gt_db.zip')
  with pytest.raises(DatasetError) as err:
    _build(gt_faces.GtFaces, tmp_path / 'missing', tmp_path / 'tfds')
  text = str(err.value)
  assert '\n' not in text and str(tmp_path / 'missing') in text
  assert 'http://127.0.0.1:9/gt_db.zip failed' in text


def test_manual_dir_without_identity_folders(tmp_path):
  (tmp_path / 'man').mkdir()
  (tmp_path / 'man' / 'README').write_text('nothing here')
  with pytest.raises(DatasetError, match='no identity folders'):
    _build(orl_faces.OrlFaces, tmp_path / 'man', tmp_path / 'tfds')


def _link_people(source, dest, people):
  for person in people:
    (dest / person).mkdir(parents=True)
    for photo in (source / person).iterdir():
      (dest / person / photo.name).symlink_to(photo)


@pytest.mark.slow
def test_real_gt_two_people(gt_dir, tmp_path):
  _link_people(gt_dir, tmp_path / 'man', ['s01', 's02'])
  builder = _build(gt_faces.GtFaces, tmp_path / 'man', tmp_path / 'tfds')  # Default config.
  assert builder.info.features['label'].num_classes == 50
  train, test = split_photos(tmp_path / 'man', gt_faces.IDENTITIES, 0, 10, 5)
  skipped = builder.info.metadata['skipped']
  for split, assigned in (('train', train), ('test', test)):
    data = _read(builder, split)
    assert skipped[split]['unreadable'] == []
    no_face = skipped[split]['no_face']
    assert len(no_face) <= 2, no_face  # HOG finds nearly all GT faces.
    assert sorted(p.decode() for p in data['photo']) == sorted(
        {p.key for p in assigned} - set(no_face))
    assert data['image'].shape == (len(assigned) - len(no_face), 160, 160, 3)
    assert data['image'].dtype == np.uint8
    assert sorted(set(data['label'].tolist())) == [0, 1]
    for photo, label in zip(data['photo'], data['label']):
      assert photo.decode().startswith(('s01/', 's02/')[label])
    # Real face crops: not blank, not saturated.
    assert 40 < data['image'].mean() < 220 and data['image'].std() > 20


def test_real_orl_three_people(orl_dir, tmp_path):
  _link_people(orl_dir, tmp_path / 'man', ['s1', 's2', 's10'])
  builder = _build(orl_faces.OrlFaces, tmp_path / 'man', tmp_path / 'tfds')
  assert builder.info.features['label'].names[:3] == ['s1', 's2', 's3']
  sizes = {}
  for split in ('train', 'test'):
    data = _read(builder, split)
    sizes[split] = len(data['label'])
    assert np.bincount(data['label'], minlength=10)[[0, 1, 9]].tolist() == (
        [7, 7, 7] if split == 'train' else [3, 3, 3])
    image, photo = data['image'][0], data['photo'][0].decode()
    assert image.shape == (160, 160, 3) and image.dtype == np.uint8
    grey = np.asarray(Image.open(orl_dir / photo).resize((160, 160), Image.BILINEAR))
    for c in range(3):
      np.testing.assert_array_equal(image[:, :, c], grey)
  assert sizes == {'train': 21, 'test': 9}
  assert builder.info.metadata['skipped']['test'] == {
      'photos': 9, 'written': 9, 'unreadable': [], 'no_face': []}


def test_builders_are_registered_and_configured():
  assert gt_faces.GtFaces.name == 'gt_faces' and orl_faces.OrlFaces.name == 'orl_faces'
  assert str(gt_faces.GtFaces.VERSION) == '1.0.0'
  assert gt_faces.GtFaces.builder_configs['default'].seed == 0
  assert face_builder.IMAGE_SIZE == 160
  with pytest.raises(ValueError, match='seed'):
    FaceConfig(name='bad', seed=-1)
  with pytest.raises(ValueError, match='unique'):
    FaceConfig(name='bad', identities=('a', 'a'))


def test_build_announces_itself_in_one_plain_line(tmp_path, capsys):
  # Not TFDS's "Downloading and preparing dataset Unknown size (download: Unknown size...".
  _make_gt_like(tmp_path / 'man')
  config = FaceConfig(name='announced', identities=('s01', 's02'), face_finder=_bright_box)
  _build(gt_faces.GtFaces, tmp_path / 'man', tmp_path / 'tfds', config)
  out = capsys.readouterr().out
  assert 'Unknown size' not in out and 'Downloading' not in out
  assert f'building gt_faces 1.0.0 (dlib face crops of the photos) in {tmp_path / "tfds"}' in out
