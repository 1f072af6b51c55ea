"""The embedded Postgres: a real server from the pgserver wheel, under the data directory.

pgserver shares one running server between processes that ask for the same directory
(``tollgate serve``, ``tollgate keys create``, ``tollgate db url``) and leaves it running
for ``psql "$(tollgate db url)"``; ``tollgate db stop`` stops it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def pg_dir(data_dir: Path) -> Path:
    return data_dir / "pg"


def ensure_running(data_dir: Path) -> str:
    """Start (or attach to) the embedded server; return a libpq URL (unix socket)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver

    directory = pg_dir(data_dir)
    directory.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(directory, cleanup_mode=None)
    return server.get_uri()


def stop(data_dir: Path) -> bool:
    directory = pg_dir(data_dir)
    if not (directory / "postmaster.pid").exists():
        return False
    import pgserver

    pgserver.get_server(directory, cleanup_mode="stop").cleanup()
    return True
