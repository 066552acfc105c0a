"""P1-P5 on a decision log, from Python: the same C++ function and report text as `offsim check --decisions`."""
from __future__ import annotations

import os
from typing import Any, Optional

from . import _core, paths


def check(log: Any, root: Optional[str] = None) -> Any:
    """Checks P1-P5 on a decision log (a path, or an open offsim_decisions.DecisionLog, which is closed first).
    Returns the report: .failed, .results (id, verdict, detail, lines per property), .diagnosis, and str() the
    text `offsim check --decisions LOG` prints. Raises offsim.ParseError for a malformed log."""
    if hasattr(log, "close") and hasattr(log, "path"):
        log.close()
        log = log.path
    return _core.check_decisions(os.fspath(log), root or paths.root())
