"""Where the offsim checkout is: scenarios/ and traces/ resolve against it.

OFFSIM_ROOT wins; otherwise the checkout this build came from (build_info.py, written by CMake); otherwise the
current directory.
"""
from __future__ import annotations

import os


def root() -> str:
    """The offsim checkout that relative scenario, manifest and trace paths resolve against."""
    env = os.environ.get("OFFSIM_ROOT")
    if env:
        return env
    try:
        from .build_info import SOURCE_DIR  # type: ignore[import-not-found]
    except ImportError:  # the package used from the source tree without a build
        return os.getcwd()
    return SOURCE_DIR


def resolve(path: str, base: str | None = None) -> str:
    """`path` itself when absolute or when it exists from the current directory, else under the checkout."""
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return os.path.join(base or root(), path)
