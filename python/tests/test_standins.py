"""Stand-in models: InvokeAI's cached-model methods, ComfyUI's ModelPatcher methods, exact bytes."""
import pytest

import offsim

GiB = 2**30


@pytest.fixture
def transformer(root):
    gpu = offsim.Device("80GiB")
    return gpu, offsim.StandInModel(gpu.add_model("transformer", "traces/models/flux2-klein-9b-transformer.json", root))


def test_invokeai_partial_load_skips_what_does_not_fit_and_keeps_manifest_order(transformer):
    gpu, model = transformer
    w = model.weights
    sizes = [w.tensor_bytes(i) for i in range(w.tensor_count)]
    budget = 3 * GiB
    loaded = model.partial_load_to_vram(budget)
    expected, total = [], 0
    for i, size in enumerate(sizes):  # state-dict order, skip what would exceed the budget
        if total + size <= budget:
            expected.append(i)
            total += size
    assert loaded == total == model.cur_vram_bytes() == gpu.memory_stats()["requested_bytes.all.current"]
    assert [i for i in range(w.tensor_count) if w.on_device(i)] == expected
    assert not model.is_in_vram()
    freed = model.partial_unload_from_vram(GiB)
    assert freed >= GiB and model.cur_vram_bytes() == loaded - freed
    assert model.full_load_to_vram() == model.total_bytes() - (loaded - freed)
    assert model.is_in_vram() and model.model is model and model.get_cpu_state_dict() is None
    assert model.full_unload_from_vram() == model.total_bytes()


def test_comfyui_model_patcher_methods(transformer):
    gpu, model = transformer
    assert model.model_size() == model.weights.total_bytes and model.loaded_size() == 0
    assert model.model_memory_required("cuda") == model.model_size()
    assert model.partially_load("cuda", extra_memory=2 * GiB) <= 2 * GiB
    first = model.loaded_size()
    assert 0 < first <= 2 * GiB
    assert model.partially_load("cuda", extra_memory=GiB) == model.loaded_size() - first
    assert model.partially_unload("cpu", memory_to_free=GiB) >= GiB
    model.load("cuda", lowvram_model_memory=0)
    assert model.loaded_size() == model.model_size()
    assert str(model.current_loaded_device()) == "cuda:0"
    model.detach()
    assert model.loaded_size() == 0 and str(model.current_loaded_device()) == "cpu"
    assert model.model_dtype() == "bf16"
    with pytest.raises(offsim.WrongDeviceError, match="transformer.partially_load"):
        model.partially_load("cuda:1", extra_memory=1)
