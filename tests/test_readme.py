"""The README's configuration table lists exactly the environment variables settings.py reads."""

import re

from tests.support.processes import PROJECT_DIR

# Read by the test harness, not by settings.py.
TEST_ONLY = {"REQUIRE_SERVICES"}


def settings_variables() -> set[str]:
    source = (PROJECT_DIR / "videomp3" / "settings.py").read_text()
    names = set(re.findall(r"env_(?:str|bool|int|float|list|secret)\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    if 'startswith("ANYMAIL_")' in source:
        names.add("ANYMAIL_<SETTING>")
    return names


def readme_variables() -> set[str]:
    text = (PROJECT_DIR / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_<>]*)`", first_cell))
    return names


def test_the_configuration_table_matches_settings_py():
    documented = readme_variables() - TEST_ONLY
    read = settings_variables()
    assert not read - documented, f"read by settings.py but not in the README: {sorted(read - documented)}"
    assert not documented - read, f"in the README but not read by settings.py: {sorted(documented - read)}"
