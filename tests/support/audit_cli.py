"""The tollgate CLI as an operator runs it against the audit trail: a subprocess with only
DATABASE_URL and the signing key in its environment."""

from __future__ import annotations

import os
import subprocess
import sys

from proxy.audit import chain

SIGNING_KEY = chain.new_private()


def tollgate(*args: str, url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=url, TOLLGATE_SIGNING_KEY=SIGNING_KEY)
    done = subprocess.run([sys.executable, "-m", "proxy", *args], env=env, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(done.stderr)
    return done


def verify(url: str, public) -> subprocess.CompletedProcess[str]:
    return tollgate("audit", "verify", "--public-key", str(public), url=url, check=False)
