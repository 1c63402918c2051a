"""One quote style across the project's Python (issue 20), as Flax and big_vision write it:
single quotes, double only where the string holds a single quote and no double one (so
that no backslash is needed);
docstrings and other triple-quoted strings are not counted."""
from __future__ import annotations

import io
import pathlib
import re
import subprocess
import tokenize

REPO = pathlib.Path(__file__).resolve().parent.parent


def python_files() -> list[pathlib.Path]:
  """The tracked .py files (every file in the package, scripts, experiments and tests)."""
  out = subprocess.run(['git', 'ls-files', '*.py'], cwd=REPO, capture_output=True, text=True)
  if out.returncode == 0 and out.stdout.strip():
    return [REPO / line for line in out.stdout.split()]
  return sorted(p for folder in ('fgsm_jax', 'experiments', 'scripts', 'tests')
                for p in (REPO / folder).rglob('*.py'))


def quote_problems(source: str) -> list[str]:
  """'line N: ...' for each one-line string literal against the rule."""
  problems = []
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type != tokenize.STRING:
      continue
    body = tok.string[re.match(r'[rbuRBUfF]*', tok.string).end():]
    if body.startswith(('"""', "'''")):
      continue
    inner = body[1:-1]
    if body[0] == '"' and "'" not in inner:
      problems.append(f'line {tok.start[0]}: {tok.string} (single quotes)')
    elif body[0] == "'" and "\\'" in inner and '"' not in inner:
      problems.append(f'line {tok.start[0]}: {tok.string} (double quotes, no backslash)')
  return problems


def test_the_rule_is_what_it_says():
  assert quote_problems("a = 'x'\nb = \"it's\"\nc = \"\"\"doc\"\"\"\n") == []
  assert quote_problems('a = "x"\n') == ['line 1: "x" (single quotes)']
  assert quote_problems("a = 'it\\'s'\n") == ["line 1: 'it\\'s' (double quotes, no backslash)"]
  assert quote_problems('a = f"{x}"\n') == ['line 1: f"{x}" (single quotes)']


def test_every_python_file_has_one_quote_style():
  files = python_files()
  assert len(files) > 100
  bad = {str(p.relative_to(REPO)): quote_problems(p.read_text()) for p in files}
  bad = {path: problems[:3] for path, problems in bad.items() if problems}
  assert not bad, bad
