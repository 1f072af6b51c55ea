"""Write docs/demo.txt: the terminal output of ``tollgate demo --no-wait``, as a newcomer sees it.

The README shows this capture instead of a hand-copied transcript, so it cannot drift from what
the demo really prints: ``make demo-capture`` rewrites it, and tests/test_demo.py runs
``--check`` to fail when the committed file no longer matches a fresh run.

What changes from run to run (ports, the temporary directory, key and run ids, the Postgres pid)
is replaced by stable placeholders of the same width, so the audit table stays aligned and a
diff of the capture shows only real changes in the story.

    python scripts/capture_demo.py           # rewrite docs/demo.txt
    python scripts/capture_demo.py --check   # exit 1 if docs/demo.txt differs from a fresh run
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "docs" / "demo.txt"
HEADER = "$ make demo    # captured by scripts/capture_demo.py (tollgate demo --no-wait)\n"


def _numbered(prefix: str, width: int) -> Callable[[re.Match[str]], str]:
    """Each distinct id becomes prefix + its order of first appearance, padded to the id's width,
    so a key that is revoked later is still recognisably the same key."""
    seen: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        seen.setdefault(found, prefix + str(len(seen) + 1).rjust(width, "0"))
        return seen[found]
    return replace


def normalise(text: str) -> str:
    """The run-specific parts of the demo's output replaced by placeholders."""
    text = re.sub(r"\S*/tollgate-demo-[A-Za-z0-9_]{8}", "/tmp/tollgate-demo-XXXXXXXX", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"\bkey_[A-Za-z0-9]{12}\b", _numbered("key_", 12), text)
    text = re.sub(r"\bdemo_[0-9a-f]{12}\b", _numbered("demo_", 12), text)
    return re.sub(r"\(pid \d+\)", "(pid N)", text)


def capture() -> str:
    """Run the demo as ``make demo`` would (its own temporary data dir) and return its normalised stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_") and k != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "proxy", "demo", "--no-wait"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise SystemExit(f"tollgate demo exited {result.returncode}:\n{result.stderr}")
    if result.stderr.strip():
        raise SystemExit(f"tollgate demo wrote to stderr (the story must be all there is):\n{result.stderr}")
    _remove_log(result.stdout)
    return HEADER + normalise(result.stdout)


def _remove_log(out: str) -> None:
    """The demo keeps its log beside its temporary directory for a person to read; a capture has no reader."""
    found = re.search(r"^Tollgate's log: (\S+)$", out, re.M)
    if found:
        Path(found.group(1)).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    fresh = capture()
    if "--check" in argv:
        if CAPTURE.read_text() == fresh:
            return 0
        sys.stderr.write(f"{CAPTURE} is stale; rerun `make demo-capture`. A fresh run prints:\n{fresh}")
        return 1
    CAPTURE.write_text(fresh)
    print(f"wrote {CAPTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
