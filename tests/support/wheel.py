"""Build Tollgate's wheel from a source tree, install it away from the checkout, and play
``tollgate demo`` from it: what a user of the wheel (or of the Docker image, which installs it)
runs, with this venv's dependencies (``--no-deps``: the test is of what the wheel carries)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.embedded import cli_env, data_dir_outside_pytest, postgres_on

# Lines of the demo's story (tests/test_demo.py reads the whole of it): the governed call, the
# refusals and the revocation, then the audit rows.
STORY = ("a $12.00 charge: allowed (no reason, $12.000000 USD)", "per-call limit: blocked (per_call_limit",
         "an SMS to a US number: allowed (no reason, $0.008300 USD)", "does not allow: blocked (recipient_not_allowed",
         "revoked key: blocked (key_revoked", "(8 rows)")


def pip(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *map(str, args)], capture_output=True, text=True, timeout=600)


def build_and_install(source: Path, into: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """pip's output building the wheel of ``source``, and the directory it is installed in."""
    built = pip("wheel", "--quiet", "--no-deps", "--disable-pip-version-check", "-w", into / "dist", source)
    assert built.returncode == 0, built.stderr
    [wheel] = (into / "dist").glob("tollgate-*.whl")
    site = into / "site"
    installed = pip("install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target", site, wheel)
    assert installed.returncode == 0, installed.stderr
    return built, site


def demo_from(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``tollgate demo --no-wait [args]`` as the wheel installed in ``site`` runs it, from ``cwd``."""
    with data_dir_outside_pytest("tollgate-wheel-demo-") as data_dir:
        env = {**cli_env(data_dir), "PYTHONPATH": str(site)}
        command = [str(site / "bin" / "tollgate"), "demo", "--no-wait", "--data-dir", str(data_dir), *args]
        played = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
        assert postgres_on(data_dir) == [], "the demo's Postgres still runs"
    return played
