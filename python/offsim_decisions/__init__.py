"""offsim_decisions: log an offload policy's cache decisions as offsim-decision/1 JSON lines, for
`offsim check --decisions LOG` (docs/decision_log.md). Standard library only; torch is imported lazily
and is optional.
"""
from .log import Decision, DecisionLog, StageScope, open_from_env
from .memory import DeviceMemory
from .schema import SCHEMA, SHIM_VERSION, SchemaError
from .workload import denoise_workload, vae_workload

__all__ = [
    "SCHEMA",
    "SHIM_VERSION",
    "Decision",
    "DecisionLog",
    "DeviceMemory",
    "SchemaError",
    "StageScope",
    "denoise_workload",
    "open_from_env",
    "vae_workload",
]
