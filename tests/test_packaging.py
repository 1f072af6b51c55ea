"""A clean install (issue 20): the wheel builds without a packaging warning, and the console
script installed from it, away from the checkout, serves the console's files and validates a
policy (the schema ships inside the package), and plays ``tollgate demo`` with the emulators and
example policies the wheel carries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import proxy_env, tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy
from tests.support.wheel import STORY, build_and_install, demo_from

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """pip's output building the checkout's wheel, and where it is installed (built once for the module)."""
    return build_and_install(ROOT, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_builds_quietly_and_serves_from_where_it_is_installed(wheel, tmp_path, pg_url):
    built, site = wheel
    assert (built.stdout, built.stderr) == ("", "")  # not one line of setuptools-style warnings

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


def test_the_demo_plays_from_the_wheel_with_the_examples_it_carries(wheel, tmp_path):
    _, site = wheel
    played = demo_from(site, cwd=tmp_path)  # away from the checkout: its policy-schemas/ is not there
    assert played.returncode == 0, played.stderr
    assert all(line in played.stdout for line in STORY), played.stdout
    where = subprocess.run([sys.executable, "-c", "import emulators.demo as d; print(d.__file__, d.EXAMPLES)"],
                           cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True,
                           timeout=60).stdout.split()
    assert len(where) == 2 and all(path.startswith(str(site)) for path in where)  # the wheel's emulators and examples
