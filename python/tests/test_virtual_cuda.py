"""offsim.virtual_cuda: Debian's CPU-only torch answering torch.cuda from a simulated device."""
import os

import pytest

import offsim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.needs_torch

GiB = 2**30
MiB = 2**20


def test_torch_cuda_answers_from_the_device_and_is_restored():
    real_mem_get_info = torch.cuda.mem_get_info
    gpu = offsim.Device("44.98GiB", platform="rocm", alloc_conf="max_split_size_mb:512", torch="2.9", name="W7900")
    with offsim.virtual_cuda(gpu):
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
        assert torch.cuda.current_device() == 0
        assert torch.cuda.get_device_name() == "W7900"
        assert torch.cuda.get_device_properties(0).total_memory == gpu.capacity
        assert torch.cuda.mem_get_info() == gpu.mem_get_info()
        ptr = torch.cuda.caching_allocator_alloc(100 * MiB)
        assert torch.cuda.memory_allocated() == 100 * MiB == torch.cuda.max_memory_allocated("cuda:0")
        assert torch.cuda.memory_reserved(torch.device("cuda")) == 100 * MiB
        assert torch.cuda.memory_stats()["allocated_bytes.all.current"] == 100 * MiB
        torch.cuda.caching_allocator_delete(ptr)
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        assert torch.cuda.memory_reserved() == 0
        torch.cuda.reset_peak_memory_stats()
        assert torch.cuda.max_memory_allocated() == 0
        assert torch.version.hip and torch.version.cuda is None  # a ROCm build, as the estimators test it
        assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:512"
        assert torch.cuda.memory._snapshot()["segments"] == []
        assert offsim.active_device() is gpu
    assert torch.cuda.mem_get_info is real_mem_get_info
    assert not torch.cuda.is_available() and torch.version.hip is None
    assert offsim.active_device() is None


def test_an_oom_is_torchs_oom_while_virtual_and_offsims_after():
    gpu = offsim.Device("1GiB")
    with offsim.virtual_cuda(gpu):
        with pytest.raises(torch.cuda.OutOfMemoryError) as e:
            torch.cuda.caching_allocator_alloc(2 * GiB)
        assert isinstance(e.value, offsim.OutOfMemoryError)
        assert str(e.value).startswith("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 1024.00 MiB")
    with pytest.raises(offsim.OutOfMemoryError) as e:
        gpu.malloc(2 * GiB)
    assert not isinstance(e.value, torch.cuda.OutOfMemoryError)


def test_another_device_index_is_a_typed_error_naming_the_call():
    with offsim.virtual_cuda(offsim.Device("8GiB")):
        with pytest.raises(offsim.WrongDeviceError, match=r"torch.cuda.memory_allocated\(device='cuda:1'\)"):
            torch.cuda.memory_allocated("cuda:1")
        with pytest.raises(offsim.WrongDeviceError, match="mem_get_info"):
            torch.cuda.mem_get_info(1)
        with pytest.raises(offsim.WrongDeviceError, match="expected a cuda device"):
            torch.cuda.memory_reserved(torch.device("cpu"))
        with pytest.raises(offsim.InvalidSizeError):
            torch.cuda.caching_allocator_alloc(-1)


def test_stand_in_models_move_like_modules(root):
    gpu = offsim.Device("24GiB")
    vae = offsim.StandInModel(gpu.add_model("vae", "traces/models/qwen-image-vae.json", root))
    with offsim.virtual_cuda(gpu):
        assert vae.to("cuda", torch.bfloat16) is vae
        assert torch.cuda.memory_stats()["requested_bytes.all.current"] == vae.total_bytes() and vae.is_in_vram()
        assert vae.device == torch.device("cuda:0")
        assert all(p.device.type == "cuda" for p in vae.parameters())
        assert sum(p.nbytes for p in vae.parameters()) == vae.total_bytes()
        vae.to(torch.device("cpu"))
        assert vae.cur_vram_bytes() == 0 and torch.cuda.memory_reserved() > 0  # freed blocks stay cached
        with pytest.raises(offsim.WrongDeviceError, match=r"vae.to\(device='cuda:1'\)"):
            vae.to("cuda:1")
        vae.cuda()
        assert vae.loaded_size() == vae.model_size()
        vae.cpu()


def test_a_stand_in_oom_leaves_earlier_tensors_on_the_device(root):
    gpu = offsim.Device("10GiB")
    te = offsim.StandInModel(gpu.add_model("te", "traces/models/qwen-image-text-encoder.json", root))
    with offsim.virtual_cuda(gpu):
        with pytest.raises(torch.cuda.OutOfMemoryError, match="Tried to allocate"):
            te.to("cuda")
        assert 0 < te.cur_vram_bytes() < te.total_bytes()
        assert torch.cuda.memory_stats()["requested_bytes.all.current"] == te.cur_vram_bytes()
