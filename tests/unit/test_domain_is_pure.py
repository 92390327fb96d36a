"""domain/ imports only the standard library and eventsourcing.domain."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_THIRD_PARTY = {"eventsourcing.domain"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_modules_import_only_stdlib_and_eventsourcing_domain() -> None:
    offenders: dict[str, set[str]] = {}
    for path in DOMAIN.glob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "domain" or top == "__future__":
                continue
            if name not in ALLOWED_THIRD_PARTY:
                offenders.setdefault(path.name, set()).add(name)
    assert offenders == {}
