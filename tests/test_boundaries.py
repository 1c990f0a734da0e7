"""Training and serving meet only in artifacts/: enforced on every import statement."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "service": {"training", "implicit", "scipy", "polars", "pyarrow"},
    "training": {"service", "litestar", "granian", "uvicorn"},
    "artifacts": {"service", "training", "litestar", "implicit", "scipy"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_boundaries(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offences = {
        str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN[package]) for f in files
    }
    offences = {f: mods for f, mods in offences.items() if mods}
    assert not offences, f"{package}/ imports what it must not: {offences}"


def test_checker_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import scipy.sparse\nfrom training.cli import main\nfrom . import x\n")
    assert imported_modules(probe) == {"scipy", "training"}
