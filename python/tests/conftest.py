"""pytest configuration of the `offsim` module's tests (ctest python_module): the offsim_gpu fixture's plugin,
and `root`, the offsim checkout (scenarios/, traces/)."""
import os

import pytest

pytest_plugins = ["offsim.pytest_plugin"]


@pytest.fixture
def root() -> str:
    import offsim.paths
    return offsim.paths.root()


def pytest_collection_modifyitems(config, items):
    # Tests that patch torch.cuda need Debian's python3-torch (1.13, CPU-only is enough).
    try:
        import torch  # noqa: F401
    except ImportError:
        skip = pytest.mark.skip(reason="torch is not importable (Debian: python3-torch)")
        for item in items:
            if "needs_torch" in item.keywords:
                item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_torch: the test imports torch (skipped without it)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
