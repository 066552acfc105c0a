// A policy written in Python, run by offsim's runner: the Python object is called back for each decision
// (prepare), after each stage step (finish), at the end of each call and for its residency claim (P4), with
// the run's context (its models on the run's device). Registered under its own id, it is a policy like the
// transcribed ones for everything that takes an id: evaluate, the property checks, the gate.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "offsim/policies/model_weights.hpp"
#include "offsim/policies/policy.hpp"
#include "offsim/policies/policy_registry.hpp"

namespace offsim::python {

namespace {

using namespace offsim::policies;

// A Python object kept by a C++ registry: released only while the interpreter runs (the registry's static
// storage outlives it at exit).
class PythonRef {
 public:
  explicit PythonRef(py::object o) : object_(new py::object(std::move(o))) {}
  ~PythonRef() {
    if (Py_IsInitialized()) {
      py::gil_scoped_acquire gil;
      delete object_;
    }
  }
  PythonRef(const PythonRef&) = delete;
  PythonRef& operator=(const PythonRef&) = delete;
  const py::object& get() const { return *object_; }

 private:
  py::object* object_;
};

template <typename T>
py::object ref(T& value) {
  return py::cast(&value, py::return_value_policy::reference);
}

// The adapter object (python/offsim/policy.py) implements policy_info, begin_run, prepare, finish, end_call
// and residency; this forwards to it.
class PythonPolicy final : public Policy {
 public:
  explicit PythonPolicy(py::object adapter) : adapter_(std::move(adapter)) {
    info_ = adapter_.attr("policy_info")().cast<PolicyInfo>();
  }
  const PolicyInfo& info() const override { return info_; }
  void begin_run(RunContext& context) override { adapter_.attr("begin_run")(ref(context)); }
  StageDecision prepare(RunContext& context, const StageStep& step) override {
    return adapter_.attr("prepare")(ref(context), ref(step)).cast<StageDecision>();
  }
  void finish(RunContext& context, const StageStep& step) override { adapter_.attr("finish")(ref(context), ref(step)); }
  void end_call(RunContext& context, int call) override { adapter_.attr("end_call")(ref(context), call); }
  ResidencyClaim residency(const RunContext& context) const override {
    return adapter_.attr("residency")(ref(context)).cast<ResidencyClaim>();
  }

 private:
  py::object adapter_;
  PolicyInfo info_;
};

}  // namespace

void bind_policy(py::module_& m) {
  py::enum_<StopReason>(m, "StopReason")
      .value("satisfied", StopReason::kSatisfied)
      .value("exhausted", StopReason::kExhausted)
      .value("not_applicable", StopReason::kNotApplicable);

  py::class_<PolicyInfo>(m, "PolicyInfo")
      .def(py::init<>())
      .def_readwrite("id", &PolicyInfo::id)
      .def_readwrite("family", &PolicyInfo::family)
      .def_readwrite("label", &PolicyInfo::label)
      .def_readwrite("upstream", &PolicyInfo::upstream)
      .def_readwrite("free_memory_formula", &PolicyInfo::free_memory_formula)
      .def_readwrite("p1_slack", &PolicyInfo::p1_slack)
      .def_readwrite("uses_estimates", &PolicyInfo::uses_estimates);

  py::class_<OomReport>(m, "OomReport")
      .def(py::init<>())
      .def_readwrite("requested", &OomReport::requested)
      .def_readwrite("message", &OomReport::message)
      .def_readwrite("device_free", &OomReport::device_free)
      .def_readwrite("reserved", &OomReport::reserved)
      .def_readwrite("allocated", &OomReport::allocated)
      .def_readwrite("stranded", &OomReport::stranded);

  py::class_<Eviction>(m, "Eviction")
      .def(py::init([](std::string model, std::uint64_t bytes) { return Eviction{std::move(model), bytes}; }),
           py::arg("model"), py::arg("bytes"))
      .def_readwrite("model", &Eviction::model)
      .def_readwrite("bytes", &Eviction::bytes);

  py::class_<LoadDecision>(m, "LoadDecision")
      .def(py::init<>())
      .def_readwrite("model", &LoadDecision::model)
      .def_readwrite("free_memory", &LoadDecision::free_memory)
      .def_readwrite("estimate", &LoadDecision::estimate)
      .def_readwrite("weights_loaded", &LoadDecision::weights_loaded)
      .def_readwrite("stop", &LoadDecision::stop)
      .def_readwrite("evictions", &LoadDecision::evictions);

  py::class_<StageDecision>(m, "StageDecision", "What P1-P5 read of one decision (policies/policy.hpp)")
      .def(py::init<>())
      .def_readwrite("estimate", &StageDecision::estimate)
      .def_readwrite("estimate_source", &StageDecision::estimate_source)
      .def_readwrite("free_memory", &StageDecision::free_memory)
      .def_readwrite("weights_loaded", &StageDecision::weights_loaded)
      .def_readwrite("stop", &StageDecision::stop)
      .def_readwrite("loads", &StageDecision::loads)
      .def_readwrite("evictions", &StageDecision::evictions)
      .def_readwrite("load_oom", &StageDecision::load_oom)
      .def_readwrite("streamed_weights", &StageDecision::streamed_weights)
      .def_readwrite("streamed_to_device", &StageDecision::streamed_to_device);

  py::class_<ResidencyClaim>(m, "ResidencyClaim")
      .def(py::init<>())
      .def_readwrite("offloaded", &ResidencyClaim::offloaded)
      .def_readwrite("resident_by_design", &ResidencyClaim::resident_by_design);

  py::class_<StageStep>(m, "StageStep", "The stage step a decision is made for")
      .def_property_readonly("stage", [](const StageStep& s) { return s.stage->name; })
      .def_property_readonly("kind", [](const StageStep& s) { return std::string(to_string(s.stage->kind)); })
      .def_property_readonly("models", [](const StageStep& s) { return s.stage->models; })
      .def_property_readonly("steps", [](const StageStep& s) { return s.stage->steps; })
      .def_readonly("call", &StageStep::call)
      .def_readonly("step", &StageStep::step);

  py::class_<MemoryBackend>(m, "MemoryBackend", "The device memory of a run (torch.cuda's answers)")
      .def("mem_get_info",
           [](const MemoryBackend& b) {
             const sim::MemInfo info = b.mem_get_info();
             return py::make_tuple(info.free, info.total);
           })
      .def("memory_allocated", [](const MemoryBackend& b) { return b.stats().allocated; })
      .def("memory_reserved", [](const MemoryBackend& b) { return b.stats().reserved; })
      .def("max_memory_allocated", [](const MemoryBackend& b) { return b.stats().peak_allocated; })
      .def("max_memory_reserved", [](const MemoryBackend& b) { return b.stats().peak_reserved; })
      .def("memory_stats",
           [](const MemoryBackend& b) -> py::object {
             const auto stats = b.device_stats();
             if (!stats) return py::dict();
             return py::cast(stats->as_memory_stats_dict());
           })
      .def("empty_cache", &MemoryBackend::empty_cache)
      .def("reset_peak_memory_stats", &MemoryBackend::reset_peak_stats)
      .def_property_readonly("allocator_model", &MemoryBackend::name);

  py::class_<RunContext>(m, "RunContext", "What a policy may touch while deciding: the run's device and models")
      .def_property_readonly("backend", [](RunContext& c) -> MemoryBackend& { return c.backend(); },
                             py::return_value_policy::reference_internal)
      .def("model", [](RunContext& c, const std::string& id) { return ModelWeights(id, c.model(id), c.backend()); },
           py::arg("id"), py::keep_alive<0, 1>())
      .def("model_ids", &RunContext::model_ids)
      .def("settings", [](const RunContext& c, const std::string& family) { return to_python(c.settings(family)); },
           py::arg("family"))
      .def_property_readonly("scenario", [](const RunContext& c) { return to_python(c.scenario().to_json()); })
      .def_property_readonly("device_name", [](const RunContext& c) { return c.scenario().device.name; })
      .def_property_readonly("capacity", [](RunContext& c) { return c.backend().mem_get_info().total; })
      .def_property_readonly("platform",
                             [](const RunContext& c) {
                               return c.scenario().device.platform == sim::Platform::kRocm ? "rocm" : "cuda";
                             })
      .def_property_readonly("alloc_conf", [](const RunContext& c) { return c.scenario().alloc_conf; })
      .def_property_readonly("torch_version", [](const RunContext& c) { return c.scenario().torch->name; })
      .def(
          "allocate_buffer",
          [](RunContext& c, const std::string& label, std::uint64_t bytes) { return c.allocate_buffer(label, bytes).has_value(); },
          py::arg("label"), py::arg("bytes"), "A buffer the policy holds (resident by design); False when it does not fit")
      .def("free_buffers", &RunContext::free_buffers, py::arg("label"))
      .def_property_readonly("buffer_bytes", &RunContext::buffer_bytes);

  m.def(
      "register_policy",
      [](const std::string& id, const std::string& label, py::object make_adapter) {
        auto factory = std::make_shared<PythonRef>(std::move(make_adapter));
        register_policy(PolicyEntry{id, label, false, [factory]() -> std::unique_ptr<Policy> {
                                      py::gil_scoped_acquire gil;
                                      return std::make_unique<PythonPolicy>(factory->get()());
                                    }});
      },
      py::arg("id"), py::arg("label"), py::arg("make_adapter"),
      "Registers a Python policy: make_adapter() returns a fresh adapter object per run");
  m.def("unregister_policy", [](const std::string& id) { return unregister_policy(id); }, py::arg("id"));
  m.def("policy_ids", [] {
    std::vector<std::string> out;
    for (const PolicyEntry& e : all_policies()) out.push_back(e.id);
    return out;
  });
}

}  // namespace offsim::python
