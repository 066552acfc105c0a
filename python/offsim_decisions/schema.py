"""The offsim-decision/1 record format: names, allowed values and the checks the writer applies before a
line is written (docs/decision_log.md is the reference; policies/decision_log.cpp reads the same names).

Every size is an integer number of bytes. The writer refuses what offsim's reader would refuse, so a
mistake in a project's test shows up where it is made, not later in `offsim check --decisions`.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

SCHEMA = "offsim-decision/1"
SHIM_NAME = "offsim_decisions"
SHIM_VERSION = "1.0.0"

RECORD_HEADER = "header"
RECORD_DECISION = "decision"
RECORD_STAGE = "stage"

# offsim's StageKind (include/offsim/policies/scenario.hpp), spelled as scenario files spell it.
STAGE_KINDS = ("text_encode", "denoise", "vae_decode", "vae_encode", "other")
# offsim's StopReason (include/offsim/policies/policy.hpp).
STOP_REASONS = ("satisfied", "exhausted", "not_applicable")
# Where the memory figures of a log come from.
MEMORY_SOURCES = ("torch.cuda", "offsim-simulator", "none")

# Keys of a memory snapshot (all bytes; any may be null when the backend does not report it).
MEMORY_KEYS = (
    "free_bytes",  # torch.cuda.mem_get_info()[0]: what the driver reports free
    "total_bytes",  # torch.cuda.mem_get_info()[1]
    "allocated_bytes",  # torch.cuda.memory_allocated()
    "reserved_bytes",  # torch.cuda.memory_reserved()
    "max_allocated_bytes",  # torch.cuda.max_memory_allocated()
    "max_reserved_bytes",  # torch.cuda.max_memory_reserved()
    "inactive_split_bytes",  # memory_stats()["inactive_split_bytes.all.current"]: free bytes in split segments
)

# Keys a VAE workload may carry: the same names as offsim's scenario format (docs/scenario_format.md).
VAE_WORKLOAD_KEYS = (
    "family",
    "op",
    "height",
    "width",
    "dtype",
    "backend",
    "frames",
    "batch",
    "tile_size",
    "memory_optimization",
    "vae_tile_sample_min_size",
)
DENOISE_WORKLOAD_KEYS = ("model", "noise_shape", "ref_latent_elements", "dtype", "efficient_attention", "model_dim", "backend")


class SchemaError(ValueError):
    """A value the policy author passed cannot be written as offsim-decision/1; the message names the field."""


def check_bytes(field: str, value: Any, *, signed: bool = False, optional: bool = False) -> Optional[int]:
    if value is None:
        if optional:
            return None
        raise SchemaError(f"{field}: a byte count is required, got None")
    # bool is an int subclass; True bytes is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        # numpy / torch integer scalars convert exactly; floats do not (a size is a whole number of bytes).
        if hasattr(value, "__index__"):
            value = value.__index__()
        else:
            raise SchemaError(f"{field}: must be an integer number of bytes, got {type(value).__name__} {value!r}")
    if not signed and value < 0:
        raise SchemaError(f"{field}: must be >= 0 bytes, got {value}")
    return int(value)


def check_choice(field: str, value: Any, choices: tuple) -> str:
    if value not in choices:
        raise SchemaError(f"{field}: must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_workload(field: str, workload: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """{"vae": {...}} or {"denoise": {...}} with the scenario format's keys, or None."""
    if workload is None:
        return None
    if not isinstance(workload, Mapping) or len(workload) != 1:
        raise SchemaError(f'{field}: must be {{"vae": {{...}}}} or {{"denoise": {{...}}}}, got {workload!r}')
    (kind, body), = workload.items()
    keys = {"vae": VAE_WORKLOAD_KEYS, "denoise": DENOISE_WORKLOAD_KEYS}.get(kind)
    if keys is None or not isinstance(body, Mapping):
        raise SchemaError(f'{field}: must be {{"vae": {{...}}}} or {{"denoise": {{...}}}}, got {workload!r}')
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise SchemaError(f"{field}.{kind}: unknown keys {unknown} (known: {', '.join(keys)})")
    return {kind: dict(body)}


def transfer_list(field: str, items) -> list:
    out = []
    for i, item in enumerate(items):
        model, size = item
        if not isinstance(model, str) or not model:
            raise SchemaError(f"{field}[{i}].model: must be a non-empty string, got {model!r}")
        out.append({"model": model, "bytes": check_bytes(f"{field}[{i}].bytes", size)})
    return out
