"""The house rules a reader relies on (ARCHITECTURE): library files under 400 lines, functions under 60,
and Ray imported only by the modules at the edges (the generator's training loop steps without it)."""

import ast
from pathlib import Path

SA0 = Path(__file__).resolve().parents[1] / "sa0"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules():
    return [(p, ast.parse(p.read_text())) for p in sorted(SA0.rglob("*.py"))]


def test_library_files_and_functions_stay_small():
    long_files = [str(p.relative_to(SA0)) for p, _ in _modules() if len(p.read_text().splitlines()) > MAX_FILE_LINES]
    long_functions = [f"{p.relative_to(SA0)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)" for p, tree in _modules()
                      for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long_files and not long_functions, (long_files, long_functions)


def test_the_training_loop_and_its_session_do_not_import_ray():
    for name in ("train/loop.py", "train/session.py", "train/step.py", "train/recipes.py"):
        tree = ast.parse((SA0 / name).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "ray" not in imported, name
