"""The floors of the README's Layout section hold: no module imports a higher floor or a neighbour on its own floor."""

import ast
import re
from pathlib import Path

from tests.support.processes import PROJECT_DIR

# Directories at the top of the repository that hold no floor's code.
BESIDE_THE_FLOORS = {"tests", "docker", "k8s", "docs", "var", "node_modules"}


def readme_floors(readme: str) -> dict[str, int]:
    """{package: floor} from the Layout section's table."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return {name: int(floor) for floor, name in re.findall(r"^\| (\d+) \| `(\w+)/` \|", section, re.MULTILINE)}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in a module, wherever it sits (functions and
    TYPE_CHECKING blocks included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def floor_violations(root: Path, floors: dict[str, int]) -> list[str]:
    problems = []
    for package, floor in floors.items():
        for path in sorted((root / package).rglob("*.py")):
            for imported in sorted(imported_packages(path) & floors.keys() - {package}):
                if floors[imported] >= floor:
                    problems.append(
                        f"{path.relative_to(root)} (floor {floor}) imports {imported} (floor {floors[imported]})"
                    )
    return problems


def test_every_import_goes_down_a_floor():
    floors = readme_floors((PROJECT_DIR / "README.md").read_text())
    assert floors.get("core") == 1 and len(floors) >= 7, floors
    assert floor_violations(PROJECT_DIR, floors) == []


def test_every_python_package_is_on_a_floor():
    floors = readme_floors((PROJECT_DIR / "README.md").read_text())
    packages = {
        path.parent.name
        for path in PROJECT_DIR.glob("*/*.py")
        if not path.parent.name.startswith(".") and path.parent.name not in BESIDE_THE_FLOORS
    }
    assert packages - floors.keys() == set(), "add these to the README's Layout table"


def test_the_check_finds_an_import_up_a_floor_and_one_across(tmp_path):
    for package, source in {
        "core": "from uploads import models\n",  # up
        "uploads": "import core.storage\n",  # down: allowed
        "conversion": "def f():\n    from notifications import services\n",  # across, inside a function
        "notifications": "from uploads.services import leases\n",
    }.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "module.py").write_text(source)
    floors = {"core": 1, "uploads": 3, "conversion": 4, "notifications": 4}
    assert floor_violations(tmp_path, floors) == [
        "core/module.py (floor 1) imports uploads (floor 3)",
        "conversion/module.py (floor 4) imports notifications (floor 4)",
    ]
