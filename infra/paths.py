"""Where the app finds the repository's code and content, whatever the current directory."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
FUNCTIONS_DIR = REPO_ROOT / "functions"
LAYER_DIR = REPO_ROOT / "layers" / "nurture"
NURTURE_PACKAGE_DIR = LAYER_DIR / "python" / "nurture"
CONTENT_DIR = REPO_ROOT / "content"
LAYER_CACHE_DIR = REPO_ROOT / "build" / "layer-cache"
