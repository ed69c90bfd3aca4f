"""Lambda SnapStart runtime hooks (the public ingest function: docs/infrastructure.md, "Cold starts").

With SnapStart, Lambda runs a function's init phase when a version is published, snapshots the memory of the
initialised environment, and resumes new environments from that snapshot. What init leaves in memory is then
shared by every environment restored from it, so:

- before the snapshot, the function's own hook (functions/1_ingest/handler.py, `prime`) does the work a first
  request would (build the resolver, the adapters and their boto3 clients, the X-Ray tracer), so that a restored
  environment starts warm; it opens no connection and reads no secret, so neither is frozen into the snapshot;
- after each restore, `after_restore` re-seeds `random` (botocore's retry jitter and powertools' log sampling
  draw from it: every restored environment would otherwise draw the same sequence) and drops cached secrets
  (none are read before the snapshot, but a restore must never serve one cached in another environment's past).
  `uuid.uuid4` and `secrets` read the OS's entropy on every call and need nothing.

The hooks come from `snapshot_restore_py`, which the Lambda Python runtime provides (python3.12 and later);
outside Lambda it is not installed and registering does nothing, so tests and `nurture local` run unchanged.
"""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Callable
from typing import Protocol, cast

Hook = Callable[[], None]


class _Registry(Protocol):
    def register_before_snapshot(self, func: Hook) -> Hook: ...

    def register_after_restore(self, func: Hook) -> Hook: ...


def _runtime_hooks() -> _Registry | None:
    """The runtime's `snapshot_restore_py`, or None where it is not installed (outside Lambda)."""
    try:
        return cast(_Registry, importlib.import_module("snapshot_restore_py"))
    except ImportError:
        return None


def register(before_snapshot: Hook, after_restore: Hook) -> bool:
    """Register the hooks with the runtime; False (and nothing registered) where there is no runtime to do it."""
    hooks = _runtime_hooks()
    if hooks is None:
        return False
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)
    return True


def after_restore() -> None:
    """Restore uniqueness in an environment resumed from the snapshot."""
    random.seed()  # from os.urandom: each restored environment draws its own sequence
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:  # loaded (by the prime): clear what it cached; never import it just to clear it
        parameters.clear_caches()
