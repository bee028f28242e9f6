"""Where the real references live: ``../shared/data`` beside the checkout (tests that need it skip without it)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PUBLISHED = SHARED_DATA / "published"
