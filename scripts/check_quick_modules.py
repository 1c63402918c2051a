"""Which fgsm_jax modules the quick test loop (``scripts/test.sh --quick``) never runs.

A sanity check of the loop, not a test: it runs the quick tests (``-m "not slow"``) under
coverage.py, then counts, for every module of the package, the lines of its functions that
ran (a module without functions counts any line, its import). A module with none is named and
the exit status is 1: mark fewer of its tests slow, or add a fast one.

  .venv/bin/python -m pip install coverage     # not a dependency of the package or its tests
  .venv/bin/python scripts/check_quick_modules.py [extra pytest arguments]
"""
from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent


def function_lines(path: pathlib.Path) -> set[int]:
  """Line numbers of the statements inside the module's functions and methods."""
  lines = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for statement in node.body:
        for inner in ast.walk(statement):
          if isinstance(inner, ast.stmt):
            lines.add(inner.lineno)
  return lines


def main(argv: list[str]) -> int:
  try:
    import coverage  # pylint: disable=import-outside-toplevel
  except ImportError:
    print('error: coverage.py is not installed (python -m pip install coverage)', file=sys.stderr)
    return 2
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get('JAX_PLATFORMS', 'cpu'),
             TF_CPP_MIN_LOG_LEVEL='2', TF_ENABLE_ONEDNN_OPTS='0')
  with tempfile.TemporaryDirectory() as tmp:
    data_file = pathlib.Path(tmp) / '.coverage'
    run = subprocess.run([sys.executable, '-m', 'coverage', 'run', '--source=fgsm_jax',
                          f'--data-file={data_file}', '-m', 'pytest', 'tests', '-q',
                          '-m', 'not slow', '-p', 'no:cacheprovider', *argv],
                         cwd=REPO, env=env, check=False)
    if run.returncode not in (0, 1):   # 1: some test failed; the modules still count
      print(f'error: pytest exited {run.returncode}', file=sys.stderr)
      return 2
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    ran = {pathlib.Path(f).resolve(): set(data.lines(f) or ()) for f in data.measured_files()}
  untouched = []
  for path in sorted((REPO / 'fgsm_jax').rglob('*.py')):
    executed = ran.get(path.resolve(), set())
    body = function_lines(path)
    # Collecting the tests imports nearly every module, so an import alone proves little:
    # a module counts when a line inside one of its functions ran.
    count = len(executed & body) if body else len(executed)
    name = path.relative_to(REPO)
    print(f"{count:6d} {'function lines' if body else 'lines (no functions)':21s} {name}")
    if not count:
      untouched.append(str(name))
  if untouched:
    print(f"not run by the quick tests: {', '.join(untouched)}", file=sys.stderr)
    return 1
  print('every module of fgsm_jax runs in the quick tests')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
