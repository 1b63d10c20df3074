"""`make lean-check`: the default install on its own, as `pip install .`
gives it, in an environment of its own (CI runs it after the tests).

Checks that TensorFlow and Keras are absent; that a Siamese ingest of 3,000
images and a query work (through the shipped ONNX export); that no such
process imports TensorFlow; and that the commands needing the training
extra say so in one line. Prints the environment's size. Exits 1 on the
first failure, saying what failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

PY = sys.executable
FMSEARCH = [PY, "-m", "fmsearch"]


def check(ok: bool, what: str, detail: str = "") -> None:
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        print(detail[-3000:])
        sys.exit(1)


def run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, cwd=home.parent, env={**os.environ, "FMSEARCH_HOME": str(home)}
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fmsearch-lean-") as tmp:
        home = Path(tmp) / "home"
        for module in ("tensorflow", "keras"):
            done = run([PY, "-c", f"import {module}"], home)
            check(done.returncode != 0, f"{module} is not installed")
        done = run([*FMSEARCH, "ingest", "--method", "siamese", "--limit", "3000"], home)
        check(
            done.returncode == 0 and "fmnist_siamese: wrote 3000 points, 3000 stored" in done.stdout,
            "fmsearch ingest --method siamese --limit 3000",
            done.stdout + done.stderr,
        )
        done = run([*FMSEARCH, "query", "--id", "60000", "--method", "siamese"], home)
        rows = [line for line in done.stdout.splitlines()[1:] if line.strip()]
        check(
            done.returncode == 0 and len(rows) == 10,
            "fmsearch query --id 60000 --method siamese",
            done.stdout + done.stderr,
        )
        code = (
            "import sys\nfrom fmsearch.cli import main\n"
            "main(['query', '--id', '3', '--method', 'siamese', '--json'], standalone_mode=False)\n"
            "print('LOADED', [m for m in ('tensorflow', 'keras') if m in sys.modules])"
        )
        done = run([PY, "-c", code], home)
        check(
            done.returncode == 0 and "LOADED []" in done.stdout,
            "a query imports neither TensorFlow nor Keras",
            done.stdout + done.stderr,
        )
        for args in (
            ["train", "--method", "siamese", "--epochs", "1", "--limit", "50"],
            ["export"],
            ["query", "--id", "60000", "--method", "siamese", "--runtime", "tensorflow"],
        ):
            done = run([*FMSEARCH, *args], home)
            check(
                done.returncode == 1
                and done.stderr.count("Error:") == 1
                and "Traceback" not in done.stderr
                and "pip install 'fmsearch[train]'" in done.stderr,
                f"fmsearch {' '.join(args)}: one line naming the training extra",
                done.stdout + done.stderr,
            )
    size = sum(p.stat().st_size for p in Path(sys.prefix).rglob("*") if p.is_file() and not p.is_symlink())
    print(f"environment {sys.prefix}: {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
