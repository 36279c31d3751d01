#!/usr/bin/env python3
"""Bootstrap and run: `python3 dev.py drill` (the main job) or `python3 dev.py test`.

Needs only Python >= 3.11. Creates `.venv` and installs the project into it the first
time, and again whenever pyproject.toml changes (a stamp file remembers its hash).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".crisis-installed"
DEFAULT_SCENARIO = "examples/drills/medical-dispute-viral.yaml"


def ensure_venv() -> None:
    """Create the venv and (re)install the project when pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under whatever python3 the machine has
        sys.exit(f"crisis needs Python >= 3.11, this is {sys.version.split()[0]}")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    py = str(BIN / "python")
    print("dev.py: installing crisis and its dependencies into .venv", flush=True)
    quiet = ["-q", "--disable-pip-version-check"]
    subprocess.run([py, "-m", "pip", "install", *quiet, "--upgrade", "pip"], check=True)
    subprocess.run([py, "-m", "pip", "install", *quiet, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(digest)


def run(argv: list[str]) -> int:
    return subprocess.call(argv, cwd=ROOT)


def serve(rest: list[str]) -> int:
    """The API and the scheduler on the embedded store (store/crisis.db) with the example roster."""
    port = rest[rest.index("--port") + 1] if "--port" in rest and rest.index("--port") + 1 < len(rest) else "8000"
    print(f"dev.py: serving http://127.0.0.1:{port}/api/v1 (API docs: /api/v1/docs) on store/crisis.db\n"
          "dev.py: first set a password to sign in, in another terminal:\n"
          "    python3 dev.py crisis user set-password president\n"
          "  then: curl -c jar -H 'content-type: application/json' "
          f"-d '{{\"person\":\"president\",\"password\":\"…\"}}' http://127.0.0.1:{port}/api/v1/auth/login",
          flush=True)
    os.chdir(ROOT)
    if subprocess.call([str(BIN / "crisis"), "db", "init"]):  # the dev store: create or upgrade it
        return 2
    os.execv(BIN / "crisis", [str(BIN / "crisis"), "serve", *rest])  # Ctrl-C / SIGTERM reach the server itself


def main(args: list[str]) -> int:
    cmd = args[0] if args else "help"
    if cmd not in {"drill", "test", "lint", "bench", "bench-api", "serve", "crisis"}:
        print(__doc__)
        print("commands: drill [SCENARIO] [opts] | test [pytest args] | lint | bench | bench-api | serve [opts] | "
              "crisis ARGS")
        return 0 if cmd in {"help", "-h", "--help"} else 2
    ensure_venv()
    if cmd == "drill":
        rest = args[1:]
        if not rest or rest[0].startswith("-"):
            rest = [DEFAULT_SCENARIO, *rest]
        return run([str(BIN / "crisis"), "drill", "run", *rest])
    if cmd == "crisis":
        return run([str(BIN / "crisis"), *args[1:]])
    if cmd == "serve":
        return serve(args[1:])
    if cmd == "bench-api":
        return run([str(BIN / "python"), "benchmarks/bench_api.py", *args[1:]])
    if cmd == "lint":
        return run([str(BIN / "ruff"), "check", "."])
    if cmd == "bench":
        return run([str(BIN / "python"), "benchmarks/run.py", *args[1:]])
    lint = run([str(BIN / "ruff"), "check", "."])
    tests = run([str(BIN / "python"), "-m", "pytest", *args[1:]])
    return tests or lint


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
