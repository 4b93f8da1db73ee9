"""Shared test fixtures: where ../shared lives, and skips when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
EVAL_DIR = SHARED / "eval"
SEED_DIR = SHARED / "seed"
BENCH_DIR = SHARED / "bench"


@pytest.fixture
def eval_dir() -> Path:
    """../shared/eval, or skip the test when it is not there."""
    if not EVAL_DIR.is_dir():
        pytest.skip("../shared/eval is absent")
    return EVAL_DIR


@pytest.fixture
def seed_file() -> Path:
    """The reference record ../shared/seed/000_f39ce92c9ebe8ec3.txt, or skip."""
    path = SEED_DIR / "000_f39ce92c9ebe8ec3.txt"
    if not path.is_file():
        pytest.skip("../shared/seed is absent")
    return path
