"""emulators/fixtures/ holds copies of the vendors' published files from ../shared/vendor-fixtures/
(emulators/fixtures/README.md names each source): the emulators shape their answers from them and
the operation catalogues are checked against them, so a copy that drifts from the shared one would
hold Tollgate to a vendor that no longer exists. Every data file here must be byte for byte the
shared one. The shared directory sits beside the repository on the machines this project is built
on, CI included; on a clone elsewhere it is absent and the test says so."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "emulators" / "fixtures"
SHARED = ROOT.parent / "shared" / "vendor-fixtures"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent (a clone away from the shared "
                    "workspace): nothing to compare the copies in emulators/fixtures/ with")
def test_every_fixture_is_the_shared_copy() -> None:
    copies = sorted(p for p in OURS.iterdir() if p.suffix == ".json")
    assert copies, "emulators/fixtures/ holds no data files"
    missing = [p.name for p in copies if not (SHARED / p.name).is_file()]
    assert missing == [], f"not in {SHARED}: {missing}"
    drifted = [p.name for p in copies if _digest(p) != _digest(SHARED / p.name)]
    assert drifted == [], f"differ from {SHARED}: {drifted} (copy the shared file again; never edit it here)"


def test_the_readme_names_every_fixture() -> None:
    readme = (OURS / "README.md").read_text(encoding="utf-8")
    unnamed = [p.name for p in OURS.iterdir() if p.suffix == ".json" and f"`{p.name}`" not in readme]
    assert unnamed == [], f"emulators/fixtures/README.md does not say where these come from: {unnamed}"
