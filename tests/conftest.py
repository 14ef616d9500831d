"""Shared test helpers: where the RL Zoo fixtures live.

The third-party agents in ``../shared/fixtures/rl-zoo`` (see its README) are only present in CI and
the team's checkout; tests that need them are skipped elsewhere with :data:`FIXTURES_MISSING_REASON`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: The RL Zoo fixtures folder, beside the repository checkout.
FIXTURES: Path = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "rl-zoo"

FIXTURES_MISSING_REASON = (
    "RL Zoo fixtures not found at ../shared/fixtures/rl-zoo (only present in CI / the team's checkout)"
)

#: Decorator (or ``pytestmark``) for tests that read the RL Zoo fixtures.
needs_zoo_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason=FIXTURES_MISSING_REASON)


def zoo_fixture(name: str) -> Path:
    """Path of one RL Zoo fixture file, e.g. ``zoo_fixture("ppo-CartPole-v1.zip")``."""
    return FIXTURES / name
