"""The package's imports go one way, as docs/ARCHITECTURE.md states: each layer imports only
itself and the layers before it, and no module imports itself round a cycle.

Every ``import`` / ``from ... import`` in every fgsm_jax module counts, those inside functions
included (a deferred import hides a cycle from Python, not from this test). The order is the
data below; ARCHITECTURE.md prints the same order on its ``layers:`` line, checked here too.
"""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = REPO / 'fgsm_jax'

# First to last; a layer is the package's top-level modules / subpackages named. Within a
# layer imports may go either way (no cycles, checked separately).
LAYERS = (
    ('io', 'processes', 'compile_cache'),   # utilities: files, processes, the compile cache
    ('ops',),                               # fast forms beside their plain references
    ('data',),
    ('models',),
    ('train',),
    ('sharding',),                          # data-parallel attacks and training
    ('attacks',),
    ('faces',),
    ('quality', 'perceptual', 'image_ops'), # PSNR / SSIM, LPIPS...; their differentiable forms
    ('protect',),
    ('evaluation', 'figures'),
    ('cli',),                               # the scripts' arguments and loaders
    ('benchmarks',),
    ('apps',),                              # the installed commands
)
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_names() -> dict[str, pathlib.Path]:
  """{'fgsm_jax.attacks.core': path, 'fgsm_jax.attacks': path of its __init__, ...}."""
  out = {}
  for path in sorted(PACKAGE.rglob('*.py')):
    parts = path.relative_to(REPO).with_suffix('').parts
    out['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
  return out


MODULES = module_names()


def imported(source: str, module: str, is_package: bool,
             modules: dict | None = None) -> set[str]:
  """The fgsm_jax modules ``source`` (the text of ``module``) imports, anywhere in it.

  ``from pkg import name`` counts as pkg.name where that is a module, else as pkg; imports of
  the module's own parent packages are left out (Python imports those first regardless).
  """
  modules = MODULES if modules is None else modules
  names = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:   # relative: from the module's package, up level - 1
        package = module.split('.') if is_package else module.split('.')[:-1]
        base = '.'.join(package[:len(package) - node.level + 1] + ([base] if base else []))
      names += [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base
                for a in node.names]
  out = set()
  for name in names:
    if name != 'fgsm_jax' and not name.startswith('fgsm_jax.'):
      continue
    while name not in modules and '.' in name:   # fgsm_jax.models.ApplyFn -> fgsm_jax.models
      name = name.rsplit('.', 1)[0]
    if name != module and not module.startswith(name + '.'):
      out.add(name)
  return out


def graph() -> dict[str, set[str]]:
  return {m: imported(p.read_text(), m, p.name == '__init__.py') for m, p in MODULES.items()}


def layer(module: str) -> int | None:
  """Index in LAYERS of ``fgsm_jax.<top>...``; None for the root package."""
  parts = module.split('.')
  return LAYER_OF[parts[1]] if len(parts) > 1 else None


def backward_imports(edges: dict[str, set[str]]) -> list[str]:
  bad = []
  for module, deps in sorted(edges.items()):
    for dep in sorted(deps):
      if layer(module) is not None and layer(dep) is not None and layer(dep) > layer(module):
        bad.append(f'{module} imports {dep} (layer {LAYERS[layer(dep)]} comes after '
                   f'{LAYERS[layer(module)]})')
  return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  found, state, stack = [], {}, []

  def visit(u):
    state[u] = 'open'
    stack.append(u)
    for v in sorted(edges.get(u, ())):
      if state.get(v) == 'open':
        found.append(stack[stack.index(v):] + [v])
      elif v not in state:
        visit(v)
    stack.pop()
    state[u] = 'done'

  for u in sorted(edges):
    if u not in state:
      visit(u)
  return found


def test_every_top_level_module_has_a_layer():
  tops = {m.split('.')[1] for m in MODULES if m.count('.') >= 1}
  assert tops - set(LAYER_OF) == set(), 'place the new module in LAYERS (and ARCHITECTURE.md)'
  assert set(LAYER_OF) - tops == set(), 'LAYERS names a module that no longer exists'


def test_each_layer_imports_only_itself_and_earlier_layers():
  assert backward_imports(graph()) == []


def test_no_import_cycles_not_even_through_deferred_imports():
  assert cycles(graph()) == []


def test_architecture_doc_states_the_same_order():
  doc = (REPO / 'docs' / 'ARCHITECTURE.md').read_text()
  match = re.search(r'^layers: (.+)$', doc, re.MULTILINE)
  assert match, "docs/ARCHITECTURE.md lost its 'layers:' line"
  stated = tuple(tuple(name.strip() for name in group.split(','))
                 for group in match.group(1).split('->'))
  assert stated == LAYERS


# The checker itself: what it must catch.
FAKE = {m: None for m in ('fgsm_jax.models', 'fgsm_jax.models.a', 'fgsm_jax.faces',
                          'fgsm_jax.faces.b', 'fgsm_jax.io')}


@pytest.mark.parametrize('source, expected', [
    ('from fgsm_jax.faces import b', {'fgsm_jax.faces.b'}),
    ('def f():\n  from fgsm_jax.faces.b import NAME\n', {'fgsm_jax.faces.b'}),   # deferred
    ('import fgsm_jax.faces.b as b', {'fgsm_jax.faces.b'}),
    ('from fgsm_jax.faces import NAME', {'fgsm_jax.faces'}),
    ('from ..faces import b', {'fgsm_jax.faces.b'}),
    ('from fgsm_jax import io', {'fgsm_jax.io'}),
    ('from fgsm_jax.models import a\nimport fgsm_jax\nimport numpy', set()),   # own package
])
def test_imports_are_found_wherever_written(source, expected):
  assert imported(source, 'fgsm_jax.models.a', False, FAKE) == expected


def test_a_backward_import_and_a_cycle_are_reported():
  edges = {'fgsm_jax.models.a': {'fgsm_jax.faces.b'}, 'fgsm_jax.faces.b': {'fgsm_jax.models.a'}}
  assert len(backward_imports(edges)) == 1 and 'models.a imports' in backward_imports(edges)[0]
  assert cycles(edges) == [['fgsm_jax.faces.b', 'fgsm_jax.models.a', 'fgsm_jax.faces.b']]
