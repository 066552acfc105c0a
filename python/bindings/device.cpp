// offsim.Device (policies::SimulatedDevice) and the weights of a model on it (policies::ModelWeights), with
// torch.cuda's names and units: bytes, mem_get_info() -> (free, total), memory_stats() with PyTorch's keys.
#include <pybind11/stl.h>

#include <filesystem>
#include <memory>

#include "bindings.hpp"
#include "model_weights_methods.hpp"
#include "offsim/policies/model_manifest.hpp"
#include "offsim/policies/model_weights.hpp"
#include "offsim/policies/scenario.hpp"
#include "offsim/policies/simulated_device.hpp"
#include "offsim/policies/working_memory_lookup.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::python {

namespace {

using policies::ModelWeights;
using policies::SimulatedDevice;

sim::Platform platform_argument(const std::string& text) {
  if (text == "cuda") return sim::Platform::kCuda;
  if (text == "rocm" || text == "hip") return sim::Platform::kRocm;
  throw ConfigError("Device(platform=\"" + text + "\"): expected \"cuda\" or \"rocm\"");
}

const sim::VersionProfile& torch_argument(const std::string& text) {
  for (const sim::VersionProfile& p : sim::VersionProfile::all()) {
    if (p.name == text) return p;
  }
  if (text == "newest" || text == "latest") return sim::VersionProfile::newest();
  return sim::VersionProfile::for_torch_version(text);
}

py::dict outcome_dict(const policies::WorkingMemoryOutcome& out) {
  py::dict d;
  d["peak_growth_bytes"] = out.peak_growth;
  d["handled_ooms"] = out.handled_ooms;
  return d;
}

// As offsim.paths.resolve: a path that exists from the current directory as given, else under the checkout.
std::filesystem::path resolve(const std::string& path, const std::string& root) {
  const std::filesystem::path p(path);
  if (p.is_absolute() || std::filesystem::exists(p)) return p;
  return std::filesystem::path(root_or_default(root)) / p;
}

}  // namespace

void bind_device(py::module_& m) {
  py::class_<ModelWeights> weights(m, "ModelWeights",
                                   "A model's weights (its manifest's tensors, one allocation each) on one device.");
  // Kept alive by its Device (add_model/model keep the Device alive), so always usable.
  def_model_weights_methods(weights, [](ModelWeights& w, const char*, bool) -> ModelWeights& { return w; });

  py::class_<SimulatedDevice>(m, "Device",
                              "A simulated GPU: the driver's view and PyTorch's caching allocator, answering as "
                              "torch.cuda does.")
      .def(py::init([](py::object capacity, const std::string& platform, const std::string& alloc_conf,
                       const std::string& torch, const std::string& name, py::object context,
                       py::object other_processes) {
             sim::DeviceSpec spec;
             spec.name = name;
             spec.platform = platform_argument(platform);
             spec.total_bytes = bytes_argument("Device", "capacity", capacity);
             spec.context_bytes = bytes_argument("Device", "context", context);
             spec.other_process_bytes = bytes_argument("Device", "other_processes", other_processes);
             return std::make_unique<SimulatedDevice>(spec, alloc_conf, torch_argument(torch));
           }),
           py::arg("capacity"), py::arg("platform") = "cuda", py::arg("alloc_conf") = "", py::arg("torch") = "newest",
           py::arg("name") = "simulated GPU", py::arg("context") = 0, py::arg("other_processes") = 0)
      .def_static(
          "from_scenario",
          [](const std::string& path, const std::string& root) {
            auto scenario = std::make_shared<const policies::Scenario>(
                policies::Scenario::load(resolve(path, root), root_or_default(root)));
            return std::make_unique<SimulatedDevice>(scenario);
          },
          py::arg("path"), py::arg("root") = "",
          "The scenario's device, allocator settings, torch profile and models, set up as a run starts (prior history, "
          "initially resident models).")
      .def_property_readonly("name", [](const SimulatedDevice& d) { return d.spec().name; })
      .def_property_readonly("capacity", [](const SimulatedDevice& d) { return d.spec().total_bytes; })
      .def_property_readonly("total_memory", [](const SimulatedDevice& d) { return d.spec().global_mem(); })
      .def_property_readonly("platform",
                             [](const SimulatedDevice& d) { return d.spec().platform == sim::Platform::kRocm ? "rocm" : "cuda"; })
      .def_property_readonly("alloc_conf", &SimulatedDevice::alloc_conf)
      .def_property_readonly("torch_version", [](const SimulatedDevice& d) { return d.torch().name; })
      .def_property_readonly("context_bytes", [](const SimulatedDevice& d) { return d.spec().context_bytes; })
      .def_property_readonly("other_process_bytes", [](const SimulatedDevice& d) { return d.spec().other_process_bytes; })
      .def_property_readonly("outside_bytes", &SimulatedDevice::outside_bytes)
      .def_property_readonly("allocator_model", [](SimulatedDevice& d) { return d.backend().name(); })
      .def_property_readonly("scenario_name", [](const SimulatedDevice& d) { return d.scenario() ? d.scenario()->name : ""; })
      .def_property_readonly("scenario",
                             [](const SimulatedDevice& d) -> py::object {
                               return d.scenario() ? to_python(d.scenario()->to_json()) : py::none();
                             })
      .def("malloc", &SimulatedDevice::malloc, py::arg("size"), py::arg("stream") = 0,
           "torch.cuda.caching_allocator_alloc: the block's address")
      .def("free", &SimulatedDevice::free, py::arg("address"), "torch.cuda.caching_allocator_delete")
      .def("empty_cache", &SimulatedDevice::empty_cache)
      .def("mem_get_info",
           [](const SimulatedDevice& d) {
             const sim::MemInfo info = d.mem_get_info();
             return py::make_tuple(info.free, info.total);
           })
      .def("memory_allocated", [](const SimulatedDevice& d) { return d.stats().allocated_bytes[sim::kAggregate].current; })
      .def("memory_reserved", [](const SimulatedDevice& d) { return d.stats().reserved_bytes[sim::kAggregate].current; })
      .def("max_memory_allocated", [](const SimulatedDevice& d) { return d.stats().allocated_bytes[sim::kAggregate].peak; })
      .def("max_memory_reserved", [](const SimulatedDevice& d) { return d.stats().reserved_bytes[sim::kAggregate].peak; })
      .def("memory_stats", [](const SimulatedDevice& d) { return d.stats().as_memory_stats_dict(); })
      .def("reset_peak_memory_stats", &SimulatedDevice::reset_peak_memory_stats)
      .def("reset_accumulated_memory_stats", &SimulatedDevice::reset_accumulated_memory_stats)
      .def("set_per_process_memory_fraction", &SimulatedDevice::set_memory_fraction, py::arg("fraction"))
      .def("snapshot",
           [](const SimulatedDevice& d) { return py::module_::import("json").attr("loads")(d.snapshot_json()); },
           "torch.cuda.memory._snapshot(): {'segments': [...], 'device_traces': [[...]], 'allocator_settings': {...}}")
      .def(
          "allocate_outside",
          [](SimulatedDevice& d, const std::string& label, py::object bytes) {
            d.allocate_outside(label, static_cast<std::int64_t>(bytes_argument("allocate_outside", "bytes", bytes)));
          },
          py::arg("label"), py::arg("bytes"))
      .def("free_outside", &SimulatedDevice::free_outside, py::arg("label"))
      .def(
          "add_model",
          [](SimulatedDevice& d, const std::string& id, const std::string& manifest, const std::string& root) {
            return d.add_model(id, policies::ModelManifest::load_shared(resolve(manifest, root)));
          },
          py::arg("id"), py::arg("manifest"), py::arg("root") = "", py::keep_alive<0, 1>())
      .def("model", &SimulatedDevice::model, py::arg("id"), py::keep_alive<0, 1>())
      .def("model_ids", &SimulatedDevice::model_ids)
      .def(
          "run_working_memory",
          [](SimulatedDevice& d, const std::string& path, const std::string& root) {
            return outcome_dict(d.run_working_memory(*policies::load_working_memory_file(resolve(path, root))));
          },
          py::arg("path"), py::arg("root") = "",
          "Runs a working-memory trace (offsim's format, a snapshot, or the inline JSON form) on the device")
      .def(
          "run_workload",
          [](SimulatedDevice& d, const std::string& family, const std::string& op, int height, int width,
             const std::string& dtype, const std::string& backend, const std::string& root) {
            policies::VaeWorkload w;
            w.family = policies::parse_vae_family(family);
            w.op = policies::parse_vae_op(op);
            w.pixel_height = height;
            w.pixel_width = width;
            w.dtype = policies::parse_dtype(dtype);
            w.backend = backend.empty() ? (d.spec().platform == sim::Platform::kRocm ? policies::Backend::rocm
                                                                                      : policies::Backend::cuda)
                                        : policies::parse_backend(backend);
            std::string why_none;
            const auto memory = policies::find_working_memory(root_or_default(root), w, &why_none);
            if (!memory) throw ConfigError("run_workload: " + why_none);
            py::dict out = outcome_dict(d.run_working_memory(*memory->trace));
            out["working_memory"] = memory->label();
            out["source"] = memory->source;
            out["provenance"] = std::string(sim::to_string(memory->provenance()));
            return out;
          },
          py::arg("family"), py::arg("op"), py::arg("height"), py::arg("width"), py::arg("dtype") = "bf16",
          py::arg("backend") = "", py::arg("root") = "",
          "A VAE stage's working memory from offsim's strongest trace of the workload (published > GPU-recorded > "
          "CPU-recorded; backend defaults to the device's platform)")
      .def(
          "run_stage", [](SimulatedDevice& d, const std::string& name) { return outcome_dict(d.run_stage(name)); },
          py::arg("name"), "One step of the scenario's stage: its first-run outside memory, then its working memory");
}

}  // namespace offsim::python
