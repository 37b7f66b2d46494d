"""The layout's rules, checked: the engine never imports the HTTP layer or the commands, each kind's
facts live in its one module, and the concepts a kind defines are decided there only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from emulator.kinds import BY_KEY, KINDS, OTHER_VERSIONS, RESOURCE_TYPES

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "emulator"
COMPOSITION_ROOT = ENGINE / "cli" / "serve.py"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def engine_files() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


def test_only_the_composition_root_imports_the_http_layer() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in engine_files()
        if path != COMPOSITION_ROOT and any(m == "api" or m.startswith("api.") for m in imported_modules(path))
    ]
    assert offenders == []
    assert any(m.startswith("api") for m in imported_modules(COMPOSITION_ROOT))


def test_the_engine_does_not_import_the_commands() -> None:
    commands = ENGINE / "cli"
    offenders = [
        str(path.relative_to(ROOT))
        for path in engine_files()
        if commands not in path.parents
        and path.name != "__main__.py"  # `python -m emulator` is the commands' entry point
        and any(m.startswith("emulator.cli") for m in imported_modules(path))
    ]
    assert offenders == []


def test_the_http_layer_does_not_touch_the_store() -> None:
    # api/ decodes, calls the engine and encodes; reads and writes go through the registry
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "api").rglob("*.py"))
        if re.search(r"(?<!emulator)\.store\b|from emulator\.store\.store import", path.read_text())
    ]
    assert offenders == []


def test_every_kind_is_registered_once_with_its_own_module() -> None:
    keys = [k.resource.key for k in KINDS]
    assert len(keys) == len(set(keys)) == len(RESOURCE_TYPES) - len(OTHER_VERSIONS) == len(BY_KEY)
    for kind in KINDS:
        if kind.strategy is not None:
            assert kind.strategy.resource is kind.resource
            # the strategy, the model and the kind are defined side by side
            assert kind.strategy.__module__ == kind.strategy.model.__module__


def test_headless_and_the_affinity_default_are_decided_in_one_place() -> None:
    headless = re.compile(r"""clusterIP["']?\)?\s*[!=]=\s*["']None["']""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in engine_files()
        if headless.search(path.read_text()) and path.name != "service.py"
    ]
    assert offenders == []
    defined = [
        str(path.relative_to(ROOT))
        for path in [*engine_files(), *sorted((ROOT / "api").rglob("*.py"))]
        if re.search(r"^DEFAULT_AFFINITY_TIMEOUT\s*=", path.read_text(), re.M)
    ]
    assert defined == ["emulator/kinds/service.py"]


def test_no_constant_is_defined_twice() -> None:
    """A module-level constant (an UPPER_CASE name bound to a literal) has one home; others import it."""
    homes: dict[tuple[str, str], list[str]] = {}
    for path in [*engine_files(), *sorted((ROOT / "api").rglob("*.py"))]:
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            value = getattr(node, "value", None)
            if not isinstance(value, ast.Constant | ast.Tuple) or not all(isinstance(t, ast.Name) for t in targets):
                continue
            for target in targets:
                assert isinstance(target, ast.Name)
                if target.id.isupper() and len(target.id) > 3:
                    homes.setdefault((target.id, ast.dump(value)), []).append(str(path.relative_to(ROOT)))
    twice = {name: files for (name, _), files in homes.items() if len(files) > 1}
    assert twice == {}
