"""Commands of this stage (registered on the shared `app`)."""

from temshift.cli import app  # noqa: F401
