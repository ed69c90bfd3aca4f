"""The `nurture` command and what only it needs: the in-memory engine, replay, population, the local stack.

Not shipped in the Lambda layer, and nothing in the package imports it."""

from pathlib import Path

# The repository this package is installed from in development (`pip install -e .`).
REPO = Path(__file__).resolve().parents[5]
