"""The unit tests mirror src: tests/unit/<package>/test_<module>.py tests
src/claudematrix/<package>/<module>.py (or its private _<module>.py), and test_init.py a
package's __init__.py. Only the tests of the whole tree stand apart."""

from __future__ import annotations

from pathlib import Path

from support import SRC

UNIT = Path(__file__).resolve().parent
PACKAGE = SRC / "claudematrix"
WHOLE_TREE = {"test_architecture.py", "test_mirror.py"}


def _module_of(test: Path) -> list[Path]:
    """The src files a unit test file may be the test of."""
    folder = PACKAGE / test.parent.relative_to(UNIT)
    name = test.stem.removeprefix("test_")
    if name == "init":
        return [folder / "__init__.py"]
    return [folder / f"{name}.py", folder / f"_{name}.py"]


def test_every_unit_test_file_names_its_module() -> None:
    strays = [
        str(test.relative_to(UNIT))
        for test in sorted(UNIT.rglob("test_*.py"))
        if not (test.parent == UNIT and test.name in WHOLE_TREE)
        and not any(path.is_file() for path in _module_of(test))
    ]
    assert strays == [], f"unit test files that mirror no module of src/claudematrix: {strays}"
