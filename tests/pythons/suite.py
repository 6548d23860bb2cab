"""The whole test suite on other supported CPythons: ``make test-every-python``.

    python tests/pythons/suite.py [VERSION ...] [-- PYTEST_ARGS ...]

For each version (default: every one in tests/pythons/versions.txt but the running
interpreter's, which ``make test`` covers), a venv under ``.pythons/venvs/VERSION`` gets
``pip install -e '.[test]'`` (once; again when pyproject.toml changes), then pytest runs
there.  Prints each version's pytest summary line; exits 1 if any run failed or an
interpreter is missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support import ROOT, SUPPORTED_PYTHONS, python_path


def venv_for(version: str, interpreter: Path) -> Path:
    venv = ROOT / ".pythons" / "venvs" / version
    marker = venv / ".installed"
    python = venv / "bin" / "python"
    if marker.exists() and marker.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime:
        return python
    subprocess.run([str(interpreter), "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", ".[test]"], cwd=ROOT, check=True)
    marker.touch()
    return python


def main(argv: list[str]) -> int:
    versions, pytest_args = argv, []
    if "--" in argv:
        versions, pytest_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    versions = versions or [v for v in SUPPORTED_PYTHONS if v != running]
    unknown = [v for v in versions if v not in SUPPORTED_PYTHONS]
    if unknown:
        print(
            f"not in tests/pythons/versions.txt: {', '.join(unknown)} "
            f"(supported: {', '.join(SUPPORTED_PYTHONS)})",
            file=sys.stderr,
        )
        return 2
    summary, ok = [], True
    for version in versions:
        interpreter = python_path(version)
        if interpreter is None:
            summary.append(f"{version}: interpreter missing (make pythons-env, or pyenv)")
            ok = False
            continue
        print(f"=== CPython {version}: {interpreter}", flush=True)
        python = venv_for(version, interpreter)
        result = subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
            cwd=ROOT,
            check=False,
            stdout=subprocess.PIPE,
            text=True,
        )
        print(result.stdout, end="", flush=True)
        last = result.stdout.strip().splitlines()[-1:] or ["no output"]
        summary.append(f"{version}: {last[0]} (exit {result.returncode})")
        ok = ok and result.returncode == 0
    print("\n".join(["=== summary", *summary]))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
