"""Print the runtime requirements of pyproject.toml, one per line, minus the names given as arguments.

Used by the Dockerfile to install dependencies in their own layer, before the code is copied.
Usage: python requirements.py pyproject.toml [excluded-name ...]
"""

from __future__ import annotations

import re
import sys
import tomllib


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def runtime_requirements(pyproject: str, excluded: set[str]) -> list[str]:
    with open(pyproject, "rb") as handle:
        dependencies: list[str] = tomllib.load(handle)["project"]["dependencies"]
    skip = {name.lower().replace("_", "-") for name in excluded}
    return [req for req in dependencies if _name(req) not in skip]


if __name__ == "__main__":
    print("\n".join(runtime_requirements(sys.argv[1], set(sys.argv[2:]))))
