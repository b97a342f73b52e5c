"""Write deploy/constraints.txt: every package `pip install -e '.[test,embedded,load]'`
resolves to, at the version installed here (the versions the tests last passed with).

Run after `make install` and a green `make test`: `make lock`. The Dockerfile, `make
install` and CI install with ``-c deploy/constraints.txt``, so a build resolves to
what was tested, not to whatever is newest that day.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Resolve the project's requirements afresh; pin each to the installed version."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run",  # noqa: S603
                        "--ignore-installed", "--report", str(report),
                        "-e", ".[test,embedded,load]"], cwd=ROOT, check=True)
        resolved = json.loads(report.read_text())["install"]
    pins = {}
    for item in resolved:
        name = item["metadata"]["name"].lower()
        if name != "waitingroom":
            try:
                pins[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pins[name] = item["metadata"]["version"]
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    (ROOT / "deploy" / "constraints.txt").write_text(
        "# Written by `make lock` (deploy/lock.py): the versions the tests passed with.\n"
        + "\n".join(lines) + "\n")
    print(f"deploy/constraints.txt: {len(lines)} packages")


if __name__ == "__main__":
    main()
