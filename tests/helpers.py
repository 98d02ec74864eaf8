"""Where test data lives: our own fixtures in tests/fixtures, real Shopify data in shared/.

Real data written by others never enters the repo; tests read it from ../shared/fixtures (or
SHOPSYNC_FIXTURES) and skip, saying so, where it is absent. CI always has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN_FIXTURES = ROOT / "tests" / "fixtures"
SHARED_FIXTURES = Path(os.environ.get("SHOPSYNC_FIXTURES") or ROOT.parent / "shared" / "fixtures")


def shared_fixture(relative: str) -> Path:
    """Path of a real-data fixture, or skip the test with the reason."""
    path = SHARED_FIXTURES / relative
    if not path.exists():
        pytest.skip(
            f"real Shopify fixture {relative} not found under {SHARED_FIXTURES} "
            "(set SHOPSYNC_FIXTURES to the shared fixtures folder to run this test)"
        )
    return path


def own_fixture(relative: str) -> Path:
    return OWN_FIXTURES / relative
