"""offsim.Device: PyTorch's names and units, the exact OOM text, typed errors for misuse."""
import json

import pytest

import offsim

GiB = 2**30
MiB = 2**20


def test_a_fresh_device_answers_like_torch_cuda():
    gpu = offsim.Device("24GiB", name="RTX 4090")
    assert gpu.mem_get_info() == (24 * GiB, 24 * GiB)
    assert (gpu.memory_allocated(), gpu.memory_reserved()) == (0, 0)
    assert gpu.capacity == gpu.total_memory == 24 * GiB
    assert (gpu.platform, gpu.alloc_conf, gpu.torch_version) == ("cuda", "", "2.11")
    assert gpu.name == "RTX 4090"


def test_malloc_rounds_and_segments_as_the_caching_allocator_does():
    gpu = offsim.Device(24 * GiB, torch="2.9")
    a = gpu.malloc(1000)               # small pool: 512-byte rounding, a 2 MiB segment
    assert gpu.memory_allocated() == 1024
    assert gpu.memory_reserved() == 2 * MiB
    b = gpu.malloc(5 * MiB)            # 1-10 MiB: a 20 MiB segment, split
    assert gpu.memory_reserved() == 22 * MiB
    gpu.free(b)
    assert gpu.memory_allocated() == 1024 and gpu.memory_reserved() == 22 * MiB  # cached, not returned
    assert gpu.mem_get_info()[0] == 24 * GiB - 22 * MiB
    gpu.empty_cache()
    assert gpu.memory_reserved() == 2 * MiB
    assert gpu.max_memory_reserved() == 22 * MiB
    gpu.reset_peak_memory_stats()
    assert gpu.max_memory_reserved() == 2 * MiB
    gpu.free(a)


def test_memory_stats_has_pytorchs_keys():
    gpu = offsim.Device("8GiB")
    gpu.malloc(3 * MiB)
    stats = gpu.memory_stats()
    for key in ("allocated_bytes.all.current", "reserved_bytes.large_pool.peak", "inactive_split_bytes.all.current",
                "requested_bytes.small_pool.freed", "num_alloc_retries", "num_ooms", "num_device_alloc",
                "oversize_allocations.current", "max_split_size"):
        assert key in stats, key
    assert stats["allocated_bytes.all.current"] == gpu.memory_allocated()
    assert stats["requested_bytes.all.current"] == 3 * MiB
    assert stats["segment.all.current"] == 1
    assert list(stats) == sorted(stats)


def test_oom_is_an_exception_with_pytorchs_whole_message():
    gpu = offsim.Device("8GiB", torch="2.9")
    gpu.malloc(6 * GiB)
    with pytest.raises(offsim.OutOfMemoryError) as e:
        gpu.malloc(3 * GiB)
    assert str(e.value) == (
        "CUDA out of memory. Tried to allocate 3.00 GiB. GPU 0 has a total capacity of 8.00 GiB of which 2.00 GiB "
        "is free. Including non-PyTorch memory, this process has 6.00 GiB memory in use. Of the allocated memory "
        "6.00 GiB is allocated by PyTorch, and 0 bytes is reserved by PyTorch but unallocated. If reserved but "
        "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
        "fragmentation.  See documentation for Memory Management  "
        "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")
    assert isinstance(e.value, RuntimeError)
    assert e.value.requested_bytes == 3 * GiB and e.value.device_free_bytes == 2 * GiB
    assert gpu.memory_stats()["num_ooms"] == 1


def test_rocm_prints_no_process_line_and_2_11_links_the_alloc_conf_section():
    gpu = offsim.Device("4GiB", platform="rocm", torch="2.11")
    with pytest.raises(offsim.OutOfMemoryError) as e:
        gpu.malloc(5 * GiB)
    text = str(e.value)
    assert "this process" not in text
    assert text.endswith("(https://docs.pytorch.org/docs/stable/notes/cuda.html"
                         "#optimizing-memory-usage-with-pytorch-cuda-alloc-conf)")


def test_bad_input_raises_typed_errors_naming_the_call():
    gpu = offsim.Device("8GiB")
    with pytest.raises(offsim.InvalidSizeError, match=r"malloc\(size=-1\)"):
        gpu.malloc(-1)
    with pytest.raises(offsim.InvalidSizeError, match="1EB"):
        gpu.malloc(2**61)
    a = gpu.malloc(MiB)
    gpu.free(a)
    with pytest.raises(offsim.DoubleFreeError, match=r"free\(0x[0-9a-f]+\): double free"):
        gpu.free(a)
    with pytest.raises(offsim.UsageError, match="not an address malloc returned"):
        gpu.free(12345)
    with pytest.raises(offsim.InvalidSizeError, match="capacity = -5 cannot be negative"):
        offsim.Device(-5)
    with pytest.raises(offsim.ConfigError, match="platform"):
        offsim.Device("8GiB", platform="tpu")
    with pytest.raises(offsim.ConfigError, match="max_split_size_mb"):
        offsim.Device("8GiB", alloc_conf="max_split_size_mb:abc")
    with pytest.raises(TypeError, match="capacity must be an int"):
        offsim.Device(8.5)
    with pytest.raises(offsim.UsageError, match="Invalid fraction"):
        gpu.set_per_process_memory_fraction(1.5)
    assert issubclass(offsim.DoubleFreeError, offsim.UsageError) and issubclass(offsim.UsageError, ValueError)
    gpu.free(0)  # caching_allocator_delete(0) does nothing, as in PyTorch


def test_memory_outside_the_allocator_lowers_free_and_fails_with_cudas_error():
    gpu = offsim.Device("8GiB", context="500MiB")
    gpu.allocate_outside("cuDNN workspace", "1GiB")
    assert gpu.mem_get_info()[0] == 8 * GiB - 500 * MiB - GiB
    assert gpu.memory_reserved() == 0
    with pytest.raises(offsim.OutOfMemoryError, match="CUDA error: out of memory"):
        gpu.allocate_outside("kernels", "7GiB")
    with pytest.raises(offsim.UsageError, match="holds memory already"):
        gpu.allocate_outside("cuDNN workspace", 1)
    gpu.free_outside("cuDNN workspace")
    with pytest.raises(offsim.UsageError, match="no memory is held"):
        gpu.free_outside("cuDNN workspace")


def test_snapshot_has_torch_cuda_memory_snapshot_form():
    gpu = offsim.Device("8GiB", alloc_conf="expandable_segments:False")
    a = gpu.malloc(30 * MiB)
    gpu.malloc(1000)
    gpu.free(a)
    snap = gpu.snapshot()
    assert set(snap) >= {"segments", "device_traces", "allocator_settings"}
    segment = next(s for s in snap["segments"] if s["segment_type"] == "large")
    assert segment["total_size"] == 30 * MiB and segment["blocks"][0]["state"] == "inactive"
    actions = [e["action"] for e in snap["device_traces"][0]]
    assert actions == ["segment_alloc", "alloc", "segment_alloc", "alloc", "free_requested", "free_completed"]
    json.dumps(snap)  # plain values, as pickle.load of _dump_snapshot gives


def test_a_scenario_device_has_its_models_resident_as_a_run_starts(root):
    gpu = offsim.Device.from_scenario("scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", root)
    assert (gpu.platform, gpu.torch_version, gpu.capacity) == ("rocm", "2.9", round(44.98 * GiB))
    assert sorted(gpu.model_ids()) == ["text_encoder", "transformer", "vae"]
    weights = {m: gpu.model(m).device_bytes for m in gpu.model_ids()}
    assert weights["transformer"] == gpu.model("transformer").total_bytes > 20 * GiB
    assert gpu.memory_stats()["requested_bytes.all.current"] == sum(weights.values())  # exact manifest bytes
    assert gpu.memory_allocated() >= sum(weights.values())  # blocks are rounded
    with pytest.raises(offsim.UsageError, match=r'model\("unet"\): no such model \(known: text_encoder'):
        gpu.model("unet")


def test_model_weights_move_by_tensor_in_manifest_order_with_exact_sizes(root):
    gpu = offsim.Device("24GiB")
    vae = gpu.add_model("vae", "traces/models/qwen-image-vae.json", root)
    sizes = [vae.tensor_bytes(i) for i in range(vae.tensor_count)]
    assert sum(sizes) == vae.total_bytes
    budget = sizes[0] + sizes[1] + sizes[2]
    assert vae.load_up_to(budget) >= sizes[0] + sizes[1]
    assert vae.on_device(0) and vae.on_device(1)
    assert vae.device_bytes == gpu.memory_stats()["requested_bytes.all.current"]
    freed = vae.unload_at_least(1)
    assert freed == sizes[0] and not vae.on_device(0)
    missing = vae.total_bytes - vae.device_bytes
    assert vae.load_all() == missing
    assert vae.load_all() == 0 and vae.device_bytes == vae.total_bytes
    with pytest.raises(offsim.UsageError, match=r"vae.load_tensor\(100000\)"):
        vae.load_tensor(100000)


def test_a_workloads_working_memory_comes_from_the_strongest_trace(root):
    rocm = offsim.Device("44.98GiB", platform="rocm", torch="2.9")
    out = rocm.run_workload("qwen_image", "decode", 832, 1248, "bf16", root=root)
    assert out["provenance"] == "published" and "PR #9305" in out["working_memory"]
    assert out["peak_growth_bytes"] == 10802429952  # the published 10.06 GiB, on the 2 MiB grid
    cuda = offsim.Device("24GiB")
    out = cuda.run_workload("sd15", "decode", 512, 512, "bf16", root=root)
    assert out["provenance"] == "cpu-recorded"
    assert out["source"].endswith("sd15-vae_decode_512x512_bf16_efficient_implicit.otrace")  # CUDA's kernels
    assert cuda.memory_allocated() == 0 and cuda.max_memory_reserved() == out["peak_growth_bytes"]
    with pytest.raises(offsim.ConfigError, match="no published measurement .* of flux2 decode 512x512"):
        cuda.run_workload("flux2", "decode", 512, 512, root=root)
    small = offsim.Device("4GiB", platform="rocm")
    with pytest.raises(offsim.OutOfMemoryError, match="Tried to allocate 10.06 GiB"):  # the published peak
        small.run_workload("qwen_image", "decode", 832, 1248, root=root)
    assert small.memory_allocated() == 0  # released as the exception unwinds
