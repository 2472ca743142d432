"""The package's layers only import one way (issue 15). Each rule is checked on the import statements
themselves (parsed with `ast`, those inside functions included), so a lazy import breaks it as surely
as a top-level one; the failure names every offending file and import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "emobench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(path: Path) -> set[str]:
    """Every emobench module `path` imports (`from pkg import mod` counts as importing pkg.mod)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}"))
    return {m for m in found if m == "emobench" or m.startswith("emobench.")}


MODULES = {module_name(p): imported(p) for p in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(sources: str, forbidden, allowed: tuple[str, ...] = ()) -> list[str]:
    """`source imports target` for each module under `sources` importing a `forbidden` target."""
    return sorted(
        f"{src} imports {dst}"
        for src, targets in MODULES.items()
        if within(src, sources) and src not in allowed
        for dst in targets
        if dst != src and forbidden(src, dst)
    )


def sibling(package: str, shared: tuple[str, ...]):
    """Importing another module of `package` other than its shared ones (or the package itself)."""
    return lambda src, dst: within(dst, package) and dst not in shared and src != package


@pytest.mark.parametrize(
    "package, shared",
    [
        ("emobench.commands", ("emobench.commands.common",)),
        ("emobench.variants", ("emobench.variants.base",)),
        ("emobench.models", ("emobench.models.base", "emobench.models.local")),
    ],
)
def test_siblings_share_only_their_common_module(package, shared):
    assert violations(package, sibling(package, shared)) == []


def test_backends_know_nothing_of_tasks():
    banned = ("emobench.task", "emobench.registry")
    assert violations("emobench.models", lambda src, dst: any(within(dst, b) for b in banned)) == []


def test_only_the_cli_reaches_the_commands():
    outside = violations(
        "emobench",
        lambda src, dst: within(dst, "emobench.commands"),
        allowed=("emobench.cli", *[m for m in MODULES if within(m, "emobench.commands")]),
    )
    assert outside == []
