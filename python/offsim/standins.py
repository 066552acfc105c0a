"""Stand-in models: a model built from one of offsim's weight manifests (traces/models/) whose weights live on a
simulated device, one allocation per tensor in state-dict order with the manifest's exact byte sizes. It has no
real tensors and computes nothing; it exposes the methods the real caches call on their models:

* InvokeAI's cached-model wrappers (CachedModelWithPartialLoad / CachedModelOnlyFullLoad in
  invokeai/backend/model_manager/load/model_cache/cached_model/): total_bytes, cur_vram_bytes, is_in_vram,
  full_load_to_vram, full_unload_from_vram, partial_load_to_vram, partial_unload_from_vram, model,
  compute_device, get_cpu_state_dict;
* ComfyUI's ModelPatcher (comfy/model_patcher.py): model_size, loaded_size, model_memory_required,
  partially_load, partially_unload, load, detach, current_loaded_device, model_dtype, is_dynamic, is_clone,
  model_patches_models, model_patches_to, lowvram_patch_counter, load_device, offload_device;
* a plain nn.Module's .to(device) / .cuda() / .cpu() / parameters() / named_parameters() / state_dict(), for
  diffusers-style hooks.

Partial loads go by tensor in manifest order within the byte budget (a tensor that does not fit is skipped,
later smaller ones are still tried); partial unloads free tensors in manifest order until enough is freed. Every
move goes through the C++ ModelWeights, so an OOM is raised exactly where the device would raise it.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from . import _core
from .virtual_cuda import device_index

_ELEMENT_SIZE = {"fp32": 4, "float32": 4, "fp16": 2, "float16": 2, "bf16": 2, "bfloat16": 2, "fp8": 1,
                 "int8": 1, "uint8": 1, "q8_0": 1}


def _is_cpu(device: Any) -> bool:
    return str(device) == "cpu"


def _torch_device(text: str) -> Any:
    """torch.device(text) when torch is imported already (a cache compares devices), else the string."""
    import sys
    torch = sys.modules.get("torch")
    return torch.device(text) if torch is not None else text


class TensorStandIn:
    """One weight of a stand-in model: its name, bytes and where it is. No data."""

    def __init__(self, model: "StandInModel", index: int):
        self._model = model
        self._index = index
        self.name = model.weights.tensor_name(index)
        self.nbytes = model.weights.tensor_bytes(index)
        self.dtype = model.weights.dtype

    @property
    def device(self) -> Any:
        return _torch_device("cuda:0" if self._model.weights.on_device(self._index) else "cpu")

    @property
    def is_cuda(self) -> bool:
        return self._model.weights.on_device(self._index)

    def element_size(self) -> int:
        return _ELEMENT_SIZE.get(self.dtype.lower(), 1)

    def numel(self) -> int:
        return self.nbytes // self.element_size()

    def nelement(self) -> int:
        return self.numel()

    def __repr__(self) -> str:
        return f"TensorStandIn({self.name!r}, {self.nbytes} bytes, {self.device})"


class StandInModel:
    """A model whose weights (`weights`, an offsim.ModelWeights) live on a simulated device."""

    def __init__(self, weights: Any, working_memory: Optional[Any] = None):
        self.weights = weights
        self.id = weights.id
        self.load_device = _torch_device("cuda:0")
        self.offload_device = _torch_device("cpu")
        self._working_memory = working_memory  # callable run by forward(): the stage's activations

    def __repr__(self) -> str:
        return (f"StandInModel({self.id!r}: {self.weights.name}, {self.weights.total_bytes} bytes, "
                f"{self.weights.device_bytes} on the device)")

    # ---- nn.Module-like ----
    def to(self, *args: Any, **kwargs: Any) -> "StandInModel":
        """module.to(device): every weight to the device ("cuda", "cuda:0", torch.device) or back ("cpu"). A dtype
        argument is accepted and ignored (a manifest fixes the dtype)."""
        device = kwargs.get("device")
        for a in args:
            if isinstance(a, str) or (hasattr(a, "type") and hasattr(a, "index")):  # a str or a torch.device
                device = a
        if device is None:
            return self
        if _is_cpu(device):
            self.weights.unload_all()
            return self
        device_index(f"{self.id}.to", device)
        self.weights.load_all()
        return self

    def cuda(self, device: Any = None) -> "StandInModel":
        device_index(f"{self.id}.cuda", device)
        self.weights.load_all()
        return self

    def cpu(self) -> "StandInModel":
        self.weights.unload_all()
        return self

    @property
    def device(self) -> Any:
        """Where the first weight is, as diffusers' ModelMixin.device reports it."""
        return _torch_device("cuda:0" if self.weights.tensor_count and self.weights.on_device(0) else "cpu")

    def named_parameters(self) -> Iterator[tuple]:
        for i in range(self.weights.tensor_count):
            t = TensorStandIn(self, i)
            yield t.name, t

    def parameters(self) -> Iterator[TensorStandIn]:
        for _, t in self.named_parameters():
            yield t

    def state_dict(self) -> dict:
        return dict(self.named_parameters())

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Runs the stage's working memory on the device (see offsim_gpu.stage_model); returns nothing."""
        if self._working_memory is None:
            raise _core.UsageError(f"{self.id}.forward(): this stand-in has no working memory attached")
        self._working_memory()

    __call__ = forward

    # ---- InvokeAI: CachedModelWithPartialLoad / CachedModelOnlyFullLoad ----
    @property
    def model(self) -> "StandInModel":
        return self

    @property
    def compute_device(self) -> Any:
        return self.load_device

    def get_cpu_state_dict(self) -> None:
        return None

    def total_bytes(self) -> int:
        return self.weights.total_bytes

    def cur_vram_bytes(self) -> int:
        return self.weights.device_bytes

    def is_in_vram(self) -> bool:
        return self.weights.device_bytes == self.weights.total_bytes

    def full_load_to_vram(self) -> int:
        before = self.weights.device_bytes
        self.weights.load_all()
        return self.weights.device_bytes - before

    def full_unload_from_vram(self) -> int:
        return self.weights.unload_all()

    def partial_load_to_vram(self, vram_bytes_to_load: int) -> int:
        return self.weights.load_up_to(int(vram_bytes_to_load))

    def partial_unload_from_vram(self, vram_bytes_to_free: int, keep_required_weights_in_vram: bool = False) -> int:
        return self.weights.unload_at_least(int(vram_bytes_to_free))

    # ---- ComfyUI: ModelPatcher ----
    def model_size(self) -> int:
        return self.weights.total_bytes

    def loaded_size(self) -> int:
        return self.weights.device_bytes

    def model_memory_required(self, device: Any = None) -> int:
        return self.weights.total_bytes

    def model_dtype(self) -> str:
        return self.weights.dtype

    def current_loaded_device(self) -> Any:
        return self.load_device if self.weights.device_bytes > 0 else self.offload_device

    def load(self, device_to: Any = None, lowvram_model_memory: int = 0, force_patch_weights: bool = False,
             full_load: bool = False) -> None:
        device_index(f"{self.id}.load", device_to)
        if full_load or lowvram_model_memory <= 0:
            self.weights.load_all()
        else:
            self.weights.load_up_to(int(lowvram_model_memory) - self.weights.device_bytes)

    def partially_load(self, device_to: Any, extra_memory: int = 0, force_patch_weights: bool = False) -> int:
        device_index(f"{self.id}.partially_load", device_to)
        return self.weights.load_up_to(int(extra_memory))

    def partially_unload(self, device_to: Any, memory_to_free: int = 0, force_patch_weights: bool = False) -> int:
        return self.weights.unload_at_least(int(memory_to_free))

    def detach(self, unpatch_all: bool = True) -> "StandInModel":
        self.weights.unload_all()
        return self

    def is_dynamic(self) -> bool:
        return False  # weights move by the patcher's own loads, not by dynamic VRAM

    def is_clone(self, other: Any) -> bool:
        return other is self

    def model_patches_models(self) -> list:
        return []

    def model_patches_to(self, device: Any) -> None:
        return None

    def lowvram_patch_counter(self) -> int:
        return 0
