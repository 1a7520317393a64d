"""Shared pieces of the clinic tests."""

from __future__ import annotations

from pathlib import Path

import pytest

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"


@pytest.fixture
def clinic() -> Path:
    return CLINIC
