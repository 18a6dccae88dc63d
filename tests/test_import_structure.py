"""The package imports one way: every import of ``mmhrformer/`` points down its rooms.

The order of the rooms lives here and in README's "Where things are" (the same order, top to
bottom). An import inside a function counts as much as one at the top of a file: it still ties
the two rooms together. Inside a room, modules may import each other, but not in a circle.
"""
import ast
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmhrformer'
# Top to bottom. 'mmhrformer' is the package's own __init__.py, which wires the rooms together.
ROOMS = ('mmhrformer', 'cli', 'deploy', 'apis', 'checkpoint', 'engine', 'registry', 'models',
         'layers', 'version')


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def room_of(module: str) -> str:
    """``mmhrformer.checkpoint.loading`` -> ``checkpoint``; the package itself -> ``mmhrformer``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else parts[0]


def imports_of(path: Path, package: Path = PACKAGE) -> List[Tuple[int, str]]:
    """(line, module) for every import of a module of the package, at any depth of the file.

    ``from .x import y`` names ``x.y`` when ``y`` is a submodule, else ``x``.
    """
    name = module_name(path, package)
    is_package = path.name == '__init__.py'
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split('.')
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f'{target}.{alias.name}'
                as_file = package.parent / Path(*sub.split('.'))
                is_module = (as_file.with_suffix('.py').is_file()
                             or (as_file / '__init__.py').is_file())
                found.append((node.lineno, sub if is_module else target))
    return sorted({(line, m) for line, m in found if m.split('.')[0] == package.name})


def violations(package: Path = PACKAGE, rooms=ROOMS) -> List[str]:
    """Every import that points up, or into a room not in ``rooms``, and every circle inside a
    room, as 'file:line: ...'."""
    problems = []
    graph: Dict[str, List[Tuple[str, str]]] = {}
    for path in sorted(package.rglob('*.py')):
        importer = module_name(path, package)
        rel = path.relative_to(package.parent)
        for line, imported in imports_of(path, package):
            src, dst = room_of(importer), room_of(imported)
            unknown = [r for r in (src, dst) if r not in rooms]
            if unknown:
                problems.append(f'{rel}:{line}: room {unknown[0]!r} is not in the order of rooms')
            elif rooms.index(dst) < rooms.index(src):
                problems.append(f'{rel}:{line}: {importer} ({src}) imports {imported} ({dst}), '
                                'a room above it')
            elif src == dst and importer != imported and not importer.startswith(imported + '.'):
                # A package's own __init__ importing its modules is the room's front door.
                graph.setdefault(importer, []).append((imported, f'{rel}:{line}'))
    problems += [f'{where}: circle inside a room: {" -> ".join(cycle)}'
                 for cycle, where in circles(graph)]
    return problems


def circles(graph: Dict[str, List[Tuple[str, str]]]) -> List[Tuple[List[str], str]]:
    """One path per circle found by depth-first search, with the place of its closing import."""
    found, state = [], {}

    def visit(node: str, path: List[str]) -> None:
        state[node] = 'open'
        for nxt, where in graph.get(node, []):
            if state.get(nxt) == 'open':
                found.append((path[path.index(nxt):] + [node, nxt] if nxt in path
                              else [node, nxt], where))
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 'done'

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_every_import_points_down():
    assert violations() == []


def test_every_room_is_in_the_order():
    rooms = {room_of(module_name(p)) for p in PACKAGE.rglob('*.py')}
    assert rooms == set(ROOMS)


def test_readme_lists_the_rooms_in_this_order():
    readme = (PACKAGE.parent / 'README.md').read_text()
    table = readme[readme.index('## Where things are'):]
    table = table[:table.index('\n## ', 5)]
    positions = [table.find(f'`mmhrformer/{room}') for room in ROOMS[1:]]
    assert -1 not in positions, [r for r, p in zip(ROOMS[1:], positions) if p == -1]
    assert positions == sorted(positions)


def write(root: Path, files: Dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / 'mmhrformer' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / 'mmhrformer'


@pytest.mark.parametrize('files, expected', [
    # Today's first circle before this was fixed: the backbone reached up into checkpoint from
    # inside a method.
    ({'models/__init__.py': '',
      'models/hrformer.py': 'def load():\n    from ..checkpoint import loading\n',
      'checkpoint/__init__.py': '', 'checkpoint/loading.py': 'from ..models import hrformer\n'},
     'mmhrformer/models/hrformer.py:2: mmhrformer.models.hrformer (models) imports '
     'mmhrformer.checkpoint.loading (checkpoint), a room above it'),
    # The second: the ONNX demo took the demo's helpers from cli, above deploy.
    ({'cli/__init__.py': '', 'cli/demo.py': 'from ..deploy.onnx_demo import run\n',
      'deploy/__init__.py': '', 'deploy/onnx_demo.py': 'from ..cli.demo import write\n'},
     'mmhrformer/deploy/onnx_demo.py:1: mmhrformer.deploy.onnx_demo (deploy) imports '
     'mmhrformer.cli.demo (cli), a room above it'),
    ({'layers/__init__.py': '', 'layers/a.py': 'from . import b\n',
      'layers/b.py': 'from .a import f\n'},
     'circle inside a room: mmhrformer.layers.a -> mmhrformer.layers.b -> mmhrformer.layers.a'),
    ({'plugins/__init__.py': 'import mmhrformer.layers\n', 'layers/__init__.py': ''},
     "room 'plugins' is not in the order of rooms"),
])
def test_the_check_fails_on_an_import_that_points_up(tmp_path, files, expected):
    problems = violations(write(tmp_path, files))
    assert any(expected in p for p in problems), problems


def test_the_check_passes_imports_that_point_down(tmp_path):
    package = write(tmp_path, {
        '__init__.py': 'from .cli import demo\n', 'cli/__init__.py': '',
        'cli/demo.py': 'from ..apis import write\nfrom ..deploy import onnx_demo\n',
        'deploy/__init__.py': '',
        'deploy/onnx_demo.py': 'def f():\n    from ..apis import write\n',
        'apis/__init__.py': 'from .demo_io import write\n', 'apis/demo_io.py': 'import numpy\n'})
    assert violations(package) == []
