"""The ports' reference runtimes, each run in a child process of its own.

TensorFlow (a frozen graph in a session, the TFLite interpreter) and onnxruntime bring their
own compilers, thread pools and copies of LLVM, Eigen and protobuf. Run inside the pytest
process beside jaxlib they left it to crash later, in XLA's own compiles (segfaults in
``backend_compile_and_load`` and ``executable.serialize``, seen three times in full runs,
always after tests/models, never in the same tests run alone). So a test hands the crops to a
child (``python tests/models/reference_runtime.py KIND MODEL IN.npy OUT.npy``), which runs
the reference and writes its descriptors back; the test process only compares arrays.

Kinds (input: N x 112 or 160 x ... x 3 crops, float32, as each runtime takes them):
  facenet_tf   `fgsm_jax.models.facenet.tf_reference` on 0..255 crops: N x 512 unit vectors.
  tflite       tf.lite.Interpreter on (x - 127.5) / 128 crops, the file's batch of 2 filled.
  onnxruntime  onnxruntime's CPU provider on (x - 127.5) / 128 crops, NCHW, one per call.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
KINDS = ('facenet_tf', 'tflite', 'onnxruntime')


def run_reference(kind: str, model: str | os.PathLike, crops: np.ndarray,
                  timeout: float = 900) -> tuple[np.ndarray, str]:
  """(the reference runtime's N x D output for ``crops``, the runtime and its version),
  computed in a child process (see the module's docstring)."""
  if kind not in KINDS:
    raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
  with tempfile.TemporaryDirectory(prefix='fgsm_jax_reference_') as tmp:
    src, dst = pathlib.Path(tmp) / 'in.npy', pathlib.Path(tmp) / 'out.npy'
    np.save(src, np.asarray(crops, np.float32))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get('PYTHONPATH', '')) if p))
    done = subprocess.run([sys.executable, __file__, kind, str(model), str(src), str(dst)],
                          capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
      raise RuntimeError(f'reference runtime {kind} failed (exit {done.returncode}): '
                         f'{done.stderr.strip()[-2000:]}')
    return np.load(dst), done.stdout.strip().splitlines()[-1]


def _normalised(crops: np.ndarray) -> np.ndarray:
  """(x - 127.5) / 128 in float32: the input both MobileFaceNet files take."""
  return (crops - np.float32(127.5)) / np.float32(128)


def _facenet_tf(model: str, x: np.ndarray) -> tuple[np.ndarray, str]:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from fgsm_jax.models.facenet import tf_reference  # pylint: disable=import-outside-toplevel
  return tf_reference(model)(x), f'TensorFlow {tf.__version__}'


def _tflite(model: str, x: np.ndarray) -> tuple[np.ndarray, str]:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  interpreter = tf.lite.Interpreter(model_path=model)
  interpreter.allocate_tensors()
  (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
  batch = int(inp['shape'][0])
  n = len(x)
  if n % batch:  # The file's batch is fixed: fill it with the first crop again.
    x = np.concatenate([x] + [x[:1]] * (batch - n % batch))
  ref = []
  for i in range(0, len(x), batch):
    interpreter.set_tensor(inp['index'], _normalised(x[i:i + batch]))
    interpreter.invoke()
    ref.append(interpreter.get_tensor(out['index']).copy())
  return np.concatenate(ref)[:n], f'tf.lite.Interpreter {tf.__version__}'


def _onnxruntime(model: str, x: np.ndarray) -> tuple[np.ndarray, str]:
  import onnxruntime as ort  # pylint: disable=import-outside-toplevel
  session = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
  (inp,) = session.get_inputs()
  nchw = _normalised(x).transpose(0, 3, 1, 2)
  ref = [session.run(None, {inp.name: nchw[i:i + 1]})[0] for i in range(len(nchw))]
  return np.concatenate(ref), f'onnxruntime {ort.__version__} (CPU)'


def main(argv: list[str]) -> int:
  kind, model, src, dst = argv
  run = {'facenet_tf': _facenet_tf, 'tflite': _tflite, 'onnxruntime': _onnxruntime}[kind]
  out, version = run(model, np.load(src))
  np.save(dst, np.asarray(out, np.float32))
  print(version)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
