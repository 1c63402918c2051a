"""The ArcFace 112 x 112 crop: landmarks, geometry, pixels against PIL and OpenCV, windows,
gradients and jitter."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fgsm_jax import faces
from fgsm_jax.faces import arcface as arcface_lib

dlib = pytest.importorskip('dlib')

# One photo per person for 8 people, varied poses (as tests/faces/test_chips.py).
PHOTOS = [f's{i:02d}/{(7 * i) % 15 + 1:02d}.jpg' for i in range(1, 17, 2)]


@pytest.fixture(scope='module')
def photos(gt_dir) -> list[tuple[np.ndarray, faces.Face]]:
  out = []
  for name in PHOTOS:
    img = np.asarray(Image.open(gt_dir / name).convert('RGB'))
    found = faces.find_faces(img, landmarks68=True)
    assert found, f'{name}: dlib found no face'
    out.append((img, found[0]))
  return out


def _pil_crop(img: np.ndarray, tf: faces.ArcFaceTransform, half_pixel: bool = True
              ) -> np.ndarray:
  """The crop by PIL's affine transform, float ('F') channels, 0-255 float64.

  PIL puts pixel centres at i + 0.5 and applies its coefficients to output pixel centres,
  so the integer-centre affine (a, b, c, d, e, f) becomes c + (1 - a - b) / 2, f + (1 - d -
  e) / 2. PIL also repeats the edge pixel within half a pixel of the border and fills
  beyond; a zero border of 2 pixels turns both into OpenCV's zero padding.
  """
  a, b, c, d, e, f = tf.affine
  if half_pixel:
    c, f = c + 0.5 * (1 - a - b), f + 0.5 * (1 - d - e)
  pad = 2
  coeffs = (a, b, c + pad, d, e, f + pad)
  chans = [np.asarray(Image.fromarray(np.pad(img[..., k].astype(np.float32), pad), mode='F')
                      .transform((112, 112), Image.AFFINE, coeffs, resample=Image.BILINEAR))
           for k in range(3)]
  return np.stack(chans, -1).astype(np.float64)


def _jax_crop(img: np.ndarray, tf: faces.ArcFaceTransform, **kw) -> np.ndarray:
  return np.asarray(faces.arcface_crop(jnp.asarray(img / 255.0, jnp.float32), tf, **kw)) * 255.0


def _cut(img: np.ndarray, face: faces.Face, left: int, top: int) -> tuple[np.ndarray, np.ndarray]:
  """The photo cut through the face at (left, top), and the five points moved with it."""
  return np.ascontiguousarray(img[top:, left:]), face.arcface_points - [left, top]


def test_five_points_from_68_landmarks():
  lm = np.random.default_rng(0).uniform(0, 200, (68, 2))
  pts = faces.arcface_points(lm)
  np.testing.assert_allclose(pts[0], lm[36:42].mean(0))
  np.testing.assert_allclose(pts[1], lm[42:48].mean(0))
  np.testing.assert_array_equal(pts[2:], lm[[30, 48, 54]])
  with pytest.raises(ValueError, match='68 x 2'):
    faces.arcface_points(lm[:5])


@pytest.mark.slow
def test_68_landmarks_are_dlibs_and_give_plausible_points(photos):
  img, face = photos[0]
  from fgsm_jax.models.dlib_files import dlib_models_dir  # pylint: disable=import-outside-toplevel
  predictor = dlib.shape_predictor(str(dlib_models_dir() / 'shape_predictor_68_face_landmarks.dat'))
  shape = predictor(img, dlib.rectangle(*face.box))
  np.testing.assert_array_equal(face.landmarks68,
                                [(shape.part(i).x, shape.part(i).y) for i in range(68)])
  for _, f in photos:
    p = f.arcface_points
    left, top, right, bottom = f.box
    assert ((p[:, 0] > left) & (p[:, 0] < right) & (p[:, 1] > top) & (p[:, 1] < bottom + 20)).all()
    assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0]  # image-left eye / mouth corner first
    assert max(p[0, 1], p[1, 1]) < p[2, 1] < min(p[3, 1], p[4, 1])  # eyes, nose, mouth
  bare = faces.find_faces(img)[0]
  assert bare.landmarks68 is None
  with pytest.raises(ValueError, match='landmarks68=True'):
    _ = bare.arcface


def test_transform_is_the_least_squares_similarity(photos):
  # Independent fit: dst = [[s, -r], [r, s]] src + t as a linear least-squares problem.
  for _, face in photos[:4]:
    src, dst = face.arcface_points, faces.ARCFACE_TEMPLATE
    rows = np.concatenate([np.stack([src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)], 1),
                           np.stack([src[:, 1], src[:, 0], np.zeros(5), np.ones(5)], 1)])
    (s, r, tx, ty), *_ = np.linalg.lstsq(rows, np.concatenate([dst[:, 0], dst[:, 1]]),
                                         rcond=None)
    fwd = np.array([[s, -r, tx], [r, s, ty], [0, 0, 1]])
    a = face.arcface.affine
    inv = np.linalg.inv(np.array([[a[0], a[1], a[2]], [a[3], a[4], a[5]], [0, 0, 1]]))
    np.testing.assert_allclose(inv, fwd, atol=1e-9)
    assert face.arcface.scale == pytest.approx(1 / np.hypot(s, r))


@pytest.mark.slow
def test_crop_matches_pil_affine(photos):
  # Measured on these 8 faces: JAX (float32) vs PIL max 0.0029, mean 6.5e-5 grey levels;
  # the NumPy reference vs PIL agrees to PIL's float32 storage. Bound: 3x the measured max
  # (the dlib chip test allows 1 grey level).
  for img, face in photos:
    ref = _pil_crop(img, face.arcface)
    ours = _jax_crop(img, face.arcface)
    assert ours.shape == (112, 112, 3)
    assert np.abs(ours - ref).max() < 0.01
    np.testing.assert_allclose(faces.arcface_crop_reference(img, face.arcface_points), ref,
                               atol=1e-3)
  # The half-pixel convention matters: without it PIL's crop is measurably another one.
  img, face = photos[0]
  assert np.abs(_pil_crop(img, face.arcface, half_pixel=False) - _pil_crop(img, face.arcface)
                ).mean() > 0.5


def test_uint8_crop_matches_opencv(photos):
  import cv2  # pylint: disable=import-outside-toplevel  (setup.cfg's test extras)
  # Measured: 0.008% of values one grey level apart (OpenCV quantizes sample positions to
  # 1/32 pixel and weights to 2^-15), none more.
  errs = []
  for img, face in photos:
    m, t = faces.similarity_transform(face.arcface_points, faces.ARCFACE_TEMPLATE)
    ref = cv2.warpAffine(img, np.concatenate([m, t[:, None]], 1), (112, 112),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ours = faces.arcface_crop_reference(img, face.arcface_points, dtype=np.uint8)
    assert ours.dtype == np.uint8
    errs.append(np.abs(ours.astype(int) - ref.astype(int)))
  errs = np.stack(errs)
  assert errs.max() <= 1 and (errs > 0).mean() < 1e-3


def test_facenet_template_is_the_readmes():
  # ../shared/models/README.md: (template - 56) * 0.9 * 160 / 112 + 80, to 4 decimals.
  np.testing.assert_allclose(faces.FACENET_TEMPLATE, [
      [57.2359, 74.4667], [102.5409, 74.2161], [80.0324, 100.2328], [61.4205, 126.7556],
      [98.9384, 126.5481]], atol=5e-5)
  assert faces.FACENET_SIZE == 160 and faces.FACENET_ZOOM == 0.9
  np.testing.assert_allclose(faces.scaled_template(112), faces.ARCFACE_TEMPLATE, atol=1e-12)
  # Points that are a similarity of the template land exactly on it.
  rot = np.array([[np.cos(0.2), -np.sin(0.2)], [np.sin(0.2), np.cos(0.2)]])
  pts = faces.FACENET_TEMPLATE @ rot.T * 1.7 + [40.0, 25.0]
  tf = faces.arcface_transform(pts, (400, 400), faces.FACENET_TEMPLATE, faces.FACENET_SIZE)
  a, b, c, d, e, f = tf.affine
  back = np.linalg.solve(np.array([[a, b], [d, e]]), (pts - [c, f]).T).T
  np.testing.assert_allclose(back, faces.FACENET_TEMPLATE, atol=1e-9)
  assert tf.size == 160 and tf.scale == pytest.approx(1.7)
  with pytest.raises(ValueError, match='5 x 2 finite template'):
    faces.arcface_transform(pts, (400, 400), faces.FACENET_TEMPLATE[:4], 160)
  with pytest.raises(ValueError, match='positive integer crop size'):
    faces.arcface_transform(pts, (400, 400), faces.FACENET_TEMPLATE, 0)


def test_facenet_crop_matches_opencv_and_the_jax_warp(photos):
  import cv2  # pylint: disable=import-outside-toplevel  (setup.cfg's test extras)
  # The 160 crop on FaceNet's template, as the README's measurements cut it (warpAffine).
  errs = []
  for img, face in photos[:4]:
    pts, tmpl, size = face.arcface_points, faces.FACENET_TEMPLATE, faces.FACENET_SIZE
    m, t = faces.similarity_transform(pts, tmpl)
    ref = cv2.warpAffine(img, np.concatenate([m, t[:, None]], 1), (size, size),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ours = faces.arcface_crop_reference(img, pts, np.uint8, tmpl, size)
    assert ours.shape == (160, 160, 3)
    errs.append(np.abs(ours.astype(int) - ref.astype(int)))
    tf = faces.arcface_transform(pts, img.shape[:2], tmpl, size)
    exact = faces.arcface_crop_reference(img, pts, np.float32, tmpl, size)
    np.testing.assert_allclose(_jax_crop(img, tf), exact, atol=0.01)
  errs = np.stack(errs)
  assert errs.max() <= 1 and (errs > 0).mean() < 1e-3


def test_crop_reads_black_outside_the_photo(photos):
  img, face = photos[0]
  left, top = int(face.arcface_points[0, 0]), int(face.arcface_points[0, 1]) - 10
  cut, pts = _cut(img, face, left, top)
  tf = faces.arcface_transform(pts, cut.shape[:2])
  ref = _pil_crop(cut, tf)
  assert (ref == 0).all(axis=-1).mean() > 0.2  # a real test of the border
  assert np.abs(_jax_crop(cut, tf) - ref).max() < 0.01
  np.testing.assert_allclose(faces.arcface_crop_reference(cut, pts), ref, atol=1e-3)


def _footprint(tf: faces.ArcFaceTransform) -> np.ndarray:
  """Photo pixels some crop sample reads with positive bilinear weight."""
  a, b, c, d, e, f = tf.affine
  yy, xx = np.mgrid[0:112, 0:112].astype(np.float64)
  px, py = a * xx + b * yy + c, d * xx + e * yy + f
  h, w = tf.photo_hw
  mask = np.zeros((h, w), bool)
  x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
  for dx in (0, 1):
    for dy in (0, 1):
      wgt = (np.abs(px - x0 - 1 + dx) if dx == 0 else px - x0) * \
          (np.abs(py - y0 - 1 + dy) if dy == 0 else py - y0)
      x, y = x0 + dx, y0 + dy
      ok = (wgt > 1e-6) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
      mask[y[ok], x[ok]] = True
  return mask


@pytest.mark.slow
def test_window_crop_equals_whole_photo_crop(photos):
  for img, face in photos[:4]:
    tf = face.arcface
    x = jnp.asarray(img / 255.0, jnp.float32)
    whole = faces.arcface_crop(x, tf)
    ys, xs = np.nonzero(_footprint(tf))
    top, left = max(ys.min() - 7, 0), max(xs.min() - 5, 0)
    size = (min(ys.max() + 1, img.shape[0]) - top + 3, min(xs.max() + 1, img.shape[1]) - left + 9)
    geom = faces.arcface_geometry(tf, top, left, size)
    win = x[top:top + size[0], left:left + size[1]]
    np.testing.assert_allclose(faces.window_crop(win, geom), whole, atol=2e-5)
    with pytest.raises(ValueError, match='larger window'):
      faces.arcface_geometry(tf, top + 8, left, size)
  # A crop that leaves the photo: a window flush with the photo's corner still agrees.
  img, face = photos[0]
  cut, pts = _cut(img, face, int(face.arcface_points[0, 0]), int(face.arcface_points[0, 1]))
  tf = faces.arcface_transform(pts, cut.shape[:2])
  x = jnp.asarray(cut / 255.0, jnp.float32)
  geom = faces.arcface_geometry(tf, 0, 0, (200, 200))
  np.testing.assert_allclose(faces.window_crop(x[:200, :200], geom), faces.arcface_crop(x, tf),
                             atol=2e-5)


def test_a_padded_window_at_the_photos_bottom_right_still_reads_black_beyond_it(photos):
  # Protection pads each window (repeating its edge pixels) to a compile bucket; where the
  # window ends at the photo's bottom or right edge, the crop must read 0 past it, as the
  # reference crop of the photo does, not the repeated edge.
  img, face = photos[0]
  bottom = int(face.arcface_points[:, 1].max()) + 4  # the photo ends below the mouth
  right = int(face.arcface_points[:, 0].max()) - 6  # and left of the right eye
  cut = np.ascontiguousarray(img[:bottom, :right])
  pts = face.arcface_points
  tf = faces.arcface_transform(pts, cut.shape[:2])
  ref = faces.arcface_crop_reference(cut, pts)
  assert (ref == 0).all(axis=-1).mean() > 0.2  # a real test of the border
  top, left = bottom - 200, right - 200
  geom = faces.arcface_geometry(tf, top, left, (200, 200))
  window = cut[top:, left:] / 255.0
  padded = jnp.asarray(np.pad(window, ((0, 56), (0, 56), (0, 0)), mode='edge'), jnp.float32)
  crop = np.asarray(faces.window_crop(padded, geom)) * 255.0
  np.testing.assert_allclose(crop, ref, atol=1e-2)


@pytest.mark.slow
def test_gradient_is_finite_and_exactly_on_the_footprint(photos):
  img, face = photos[1]
  tf = face.arcface
  wts = jax.random.normal(jax.random.PRNGKey(0), (112, 112, 3))
  g = jax.grad(lambda v: jnp.sum(faces.arcface_crop(v, tf) * wts))(
      jnp.asarray(img / 255.0, jnp.float32))
  g = np.asarray(g)
  assert np.isfinite(g).all()
  nz = (g != 0).any(-1)
  foot = _footprint(tf)
  assert not (nz & ~foot).any()
  assert nz[foot].mean() > 0.99


def _scaled(img: np.ndarray, face: faces.Face, scale: float):
  big = np.asarray(Image.fromarray(img).resize(
      (round(img.shape[1] * scale), round(img.shape[0] * scale)), Image.BILINEAR))
  return big, faces.arcface_transform(face.arcface_points * scale, big.shape[:2])


@pytest.mark.slow
def test_pyramid_gives_a_dense_gradient_and_the_exact_crop_for_a_large_face(photos):
  img, face = photos[0]
  big, tf = _scaled(img, face, 4.0)
  assert tf.scale > 4 and tf.n_down >= 2
  x = jnp.asarray(big / 255.0, jnp.float32)
  # The forward value is the plain bilinear crop whatever the pyramid (smooth + (exact -
  # smooth) rounds back to within a float32 ulp: measured 4e-9).
  np.testing.assert_allclose(faces.arcface_crop(x, tf, n_down=tf.n_down),
                             faces.arcface_crop(x, tf), rtol=0, atol=1e-7)
  wts = jax.random.normal(jax.random.PRNGKey(1), (112, 112, 3))

  def grad(n_down):
    g = jax.grad(lambda v: jnp.sum(faces.arcface_crop(v, tf, n_down=n_down) * wts))(x)
    g = np.asarray(g)
    assert np.isfinite(g).all()
    return (g != 0).any(-1)

  # The central 60% of the crop, in photo pixels.
  a, b, c, d, e, f = tf.affine
  yy, xx = np.mgrid[0:big.shape[0], 0:big.shape[1]].astype(np.float64)
  inv = np.linalg.inv(np.array([[a, b], [d, e]]))
  u = inv[0, 0] * (xx - c) + inv[0, 1] * (yy - f)
  v = inv[1, 0] * (xx - c) + inv[1, 1] * (yy - f)
  inner = (u > 22) & (u < 90) & (v > 22) & (v < 90)
  assert inner.sum() > 50_000
  sparse, dense = grad(0), grad(tf.n_down)
  assert sparse[inner].mean() < 0.2  # plain bilinear: a lattice (measured 0.11; pyramid 1.0)
  for dy in (0, 1):
    for dx in (0, 1):
      assert dense[dy::2, dx::2][inner[dy::2, dx::2]].mean() > 0.99
  # The gradient's path samples the pyramid level where the exact crop samples the photo:
  # its crop is closest to the exact one at the level affine, not a quarter pixel off
  # (measured mean |diff| 1.14 grey levels there, 1.44 a quarter level pixel off in x).
  full, low = arcface_lib.crop_pyramid(x, tf.n_down)
  aff = jnp.asarray(tf.affine, jnp.float32)
  exact = arcface_lib._sample(full, aff, 112)  # pylint: disable=protected-access

  def level_error(dx, dy):
    la = arcface_lib.level_affine(aff, tf.n_down).at[2].add(dx).at[5].add(dy)
    return float(jnp.abs(arcface_lib._sample(low, la, 112) - exact).mean())  # pylint: disable=protected-access

  best = level_error(0.0, 0.0)
  assert best < 2.0
  for dx, dy in ((0.25, 0), (-0.25, 0), (0, 0.25), (0, -0.25)):
    assert level_error(dx, dy) > best + 0.1
  # Nothing beyond the footprint grown by the pyramid's reach.
  ys, xs = np.nonzero(_footprint(tf))
  reach = 2 ** (tf.n_down + 2)
  box = np.zeros_like(dense)
  box[max(ys.min() - reach, 0):ys.max() + reach, max(xs.min() - reach, 0):xs.max() + reach] = True
  assert not (dense & ~box).any()


@pytest.mark.slow
def test_jitter_shared_with_the_dlib_chip(photos):
  from fgsm_jax.protect import warp  # pylint: disable=import-outside-toplevel
  img, face = photos[0]
  big = np.asarray(Image.fromarray(img).resize((img.shape[1] * 5 // 2, img.shape[0] * 5 // 2),
                                               Image.BILINEAR))
  lm5 = np.round(face.landmarks * 2.5)
  chip = faces.chip_transform(lm5, big.shape[:2])
  assert chip.n_down >= 1  # so the chip's pyramid offset and shift are exercised
  arc = faces.arcface_transform(face.arcface_points * 2.5, big.shape[:2])
  top, left, size = 270, 516, (576, 576)  # odd offsets from the chip crop: shift (1, 1)
  cg = warp.geometry(chip, top, left, size)
  ag = faces.arcface_geometry(arc, top, left, size)
  np.testing.assert_array_equal(cg.shift, (1, 1))
  # warp.jitter_affine applies to the ArcFace affine as is (size=112); 0 sd: no change.
  np.testing.assert_allclose(warp.jitter_affine(ag.affine, jax.random.PRNGKey(0), 0.0, 0.0, 0.0,
                                                size=faces.ARCFACE_SIZE), ag.affine, atol=1e-4)
  same = faces.follow_chip_jitter(ag.affine, cg.affine, cg.affine, chip.n_down, cg.shift)
  np.testing.assert_allclose(same, ag.affine, atol=1e-3)
  # The chip's centre pixel, mapped to the window, is dlib's rectangle's centre (chips.py's
  # rect is in photo pixels; dlib's own pyramid point mapping differs by < 1 pixel).
  step, centre = 2.0 ** chip.n_down, (chip.size - 1) / 2.0

  def to_window(aff, u):
    q = np.array([[aff[0], aff[1], aff[2]], [aff[3], aff[4], aff[5]]]) @ [u[0], u[1], 1.0]
    return step * q + 2 * step - 2 + np.asarray(cg.shift)[::-1]

  l, t, r, b = chip.rect
  np.testing.assert_allclose(to_window(np.asarray(cg.affine), (centre, centre)),
                             [(l + r) / 2 - left, (t + b) / 2 - top], atol=1.0)
  # A jitter moves every photo point the chip shows and the ArcFace crop shows alike.
  jit = warp.jitter_affine(cg.affine, jax.random.PRNGKey(3), 2.0, 3.0, 0.05)
  moved = np.asarray(faces.follow_chip_jitter(ag.affine, cg.affine, jit, chip.n_down, cg.shift))
  a0 = np.asarray(ag.affine, np.float64)
  for u in ((0.0, 0.0), (centre, centre), (140.0, 20.0)):
    p = to_window(np.asarray(cg.affine, np.float64), u)
    p_new = to_window(np.asarray(jit, np.float64), u)
    # ArcFace crop coordinate showing p before the jitter, then the point it shows after.
    m = np.array([[a0[0], a0[1]], [a0[3], a0[4]]])
    v = np.linalg.solve(m, p - a0[[2, 5]])
    got = np.array([[moved[0], moved[1]], [moved[3], moved[4]]]) @ v + moved[[2, 5]]
    np.testing.assert_allclose(got, p_new, atol=0.05)


def test_one_compiled_crop_serves_every_face_of_a_window_size(photos):
  traces = []

  @jax.jit
  def crop(window, geom):
    traces.append(1)
    return faces.window_crop(window, geom)

  size = (240, 240)
  for img, face in photos[:3]:
    tf = face.arcface
    ys, xs = np.nonzero(_footprint(tf))
    top = int(np.clip((ys.min() + ys.max() - size[0]) // 2, 0, img.shape[0] - size[0]))
    left = int(np.clip((xs.min() + xs.max() - size[1]) // 2, 0, img.shape[1] - size[1]))
    x = jnp.asarray(img / 255.0, jnp.float32)
    got = crop(x[top:top + size[0], left:left + size[1]],
               faces.arcface_geometry(tf, top, left, size))
    np.testing.assert_allclose(got, faces.arcface_crop(x, tf), atol=2e-5)
  assert len(traces) == 1


def test_bad_input_raises_a_one_line_value_error(photos):
  img, face = photos[0]
  with pytest.raises(ValueError, match='5 x 2'):
    faces.arcface_transform(np.zeros((4, 2)), img.shape[:2])
  with pytest.raises(ValueError, match='do not fix'):
    faces.arcface_transform(np.zeros((5, 2)), img.shape[:2])
  with pytest.raises(ValueError, match='positive photo size'):
    faces.arcface_transform(face.arcface_points, (0, 10))
  with pytest.raises(ValueError, match='computed for'):
    faces.arcface_crop(jnp.zeros((10, 10, 3)), face.arcface)
  with pytest.raises(ValueError, match='H x W x 3'):
    faces.arcface_crop_reference(img[..., 0], face.arcface_points)
  with pytest.raises(ValueError, match='positive scale'):
    faces.arcface_n_down(0.0)
  assert [faces.arcface_n_down(s) for s in (0.5, 2.0, 2.01, 4.0, 4.5)] == [0, 0, 1, 1, 2]
