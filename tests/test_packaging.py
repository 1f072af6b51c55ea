"""A clean install (issue 20): the wheel builds without a packaging warning, and the console
script installed from it, away from the checkout, serves the console's files and validates a
policy (the schema ships inside the package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.processes import proxy_env, tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

ROOT = Path(__file__).resolve().parents[1]


def pip(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_the_wheel_builds_quietly_and_serves_from_where_it_is_installed(tmp_path, pg_url):
    built = pip("wheel", "--quiet", "--no-deps", "--disable-pip-version-check", "-w", tmp_path / "dist", ROOT)
    assert built.returncode == 0, built.stderr
    assert (built.stdout, built.stderr) == ("", "")  # not one line of setuptools-style warnings
    [wheel] = (tmp_path / "dist").glob("tollgate-*.whl")
    site = tmp_path / "site"
    installed = pip("install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target", site, wheel)
    assert installed.returncode == 0, installed.stderr

    env = {**proxy_env(pg_url, {}), "PYTHONPATH": str(site)}  # the dependencies are this venv's
    tollgate = (str(site / "bin" / "tollgate"),)
    helped = subprocess.run([*tollgate, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "serve" in helped.stdout
    where = subprocess.run([sys.executable, "-c", "import proxy.policy.rules as r; print(r.__file__, r.SCHEMA_PATH)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60).stdout.split()
    assert all(path.startswith(str(site)) for path in where) and len(where) == 2  # the wheel's, not the checkout's

    with tollgate_serve(env, command=tollgate, cwd=tmp_path) as (base, _):
        static = httpx.get(f"{base}/console/static/console.css")
        assert static.status_code == 200 and "text/css" in static.headers["content-type"]
        assert httpx.get(f"{base}/console/").status_code in (200, 303)  # templates render (or send to sign-in)
        created = httpx.post(f"{base}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                             json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET})
        assert created.status_code == 201, created.text
