"""offsim from Python (docs/python.md): a simulated GPU with PyTorch's caching allocator (offsim.Device), a
virtual torch.cuda that lets a real model cache run against it with a CPU-only torch (offsim.virtual_cuda),
stand-in models built from offsim's weight manifests, P1-P5 on a decision log (offsim.check), a pytest fixture
(offsim_gpu, in offsim.pytest_plugin) and a Python policy run over offsim's scenarios and generated cases
(offsim.evaluate, offsim.check_generated).

    PYTHONPATH=build/release/python /usr/bin/python3 -c "import offsim; print(offsim.Device('24GiB').mem_get_info())"
"""
from ._core import (  # noqa: F401  (re-exported)
    ConfigError,
    Device,
    DoubleFreeError,
    InvalidSizeError,
    ModelWeights,
    OutOfMemoryError,
    ParseError,
    UsageError,
    WrongDeviceError,
)
from .checks import check  # noqa: F401
from .harness import OffsimGpu  # noqa: F401
from .policy import (  # noqa: F401
    Decision,
    check_counterexample,
    check_generated,
    evaluate,
    registered,
    run_suite,
)
from .standins import StandInModel, TensorStandIn  # noqa: F401
from .virtual_cuda import VirtualCuda, active_device, virtual_cuda  # noqa: F401

__all__ = [
    "ConfigError", "Decision", "Device", "DoubleFreeError", "InvalidSizeError", "ModelWeights", "OffsimGpu",
    "OutOfMemoryError", "ParseError", "StandInModel", "TensorStandIn", "UsageError", "VirtualCuda",
    "WrongDeviceError", "active_device", "check", "check_counterexample", "check_generated", "evaluate",
    "registered", "run_suite", "virtual_cuda",
]
