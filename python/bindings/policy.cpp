// A policy written in Python, run by offsim's runner: the Python object is called back for each decision
// (prepare), after each stage step (finish), at the end of each call and for its residency claim (P4), with
// the run's context (its models on the run's device). Registered under its own id, it is a policy like the
// transcribed ones for everything that takes an id: evaluate, the property checks, the gate.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>

#include "bindings.hpp"
#include "model_weights_methods.hpp"
#include "offsim/sim/errors.hpp"
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

// What Python is given of a run (its context, its models, its device) points into the runner's frame, which is
// gone once the run returns: a policy that keeps `run` or a model in a global and uses it after offsim.evaluate
// returned would read freed memory and crash the interpreter. So each such object holds its policy's callback
// window and answers only while the runner is inside one of that policy's callbacks of the same run; otherwise
// it raises offsim.UsageError naming the call.
struct CallbackWindow {
  RunContext* open = nullptr;  // the context of the callback executing now; null between callbacks
  std::uint64_t run = 0;       // counts runs: a later run whose context has the same address is another run
  bool read_only = false;      // residency(): the policy reports what is on the device; nothing may move
};

class RunAccess {
 public:
  explicit RunAccess(std::shared_ptr<CallbackWindow> window)
      : window_(std::move(window)), context_(window_->open), run_(window_->run) {}

  RunContext& context(const std::string& call, bool moves = false) const {
    if (window_->open != context_ || window_->run != run_) {
      throw AllocatorUsageError(call + ": a run's context, models and device answer only inside the policy's callbacks "
                                       "of that run (begin_run, prepare, finish, end_call, residency); keep model ids, "
                                       "not these objects");
    }
    if (moves && window_->read_only) {
      throw AllocatorUsageError(call + ": residency() reports what is on the device; it may not move weights or "
                                       "allocate");
    }
    return *context_;
  }

 private:
  std::shared_ptr<CallbackWindow> window_;
  RunContext* context_;
  std::uint64_t run_;
};

// A model of a run (RunContext.model(id)): ModelWeights behind the run's window.
struct RunWeights {
  RunAccess access;
  ModelWeights weights;
};

// The run's device as torch.cuda sees it (RunContext.backend).
struct RunDevice {
  RunAccess access;
  MemoryBackend& get(const char* call, bool moves = false) const {
    return access.context(std::string("run.cuda.") + call, moves).backend();
  }
};

// The stage step a decision is made for, copied: the runner's StageStep points into the scenario.
struct StepView {
  std::string stage, kind;
  std::vector<std::string> models;
  int steps = 0, call = 0, step = 0;
};

StepView view(const StageStep& s) {
  return {s.stage->name, std::string(to_string(s.stage->kind)), s.stage->models, s.stage->steps, s.call, s.step};
}

// The adapter object (python/offsim/policy.py) implements policy_info, begin_run, prepare, finish, end_call
// and residency; this forwards to it, with the run's context open for the length of each call.
class PythonPolicy final : public Policy {
 public:
  explicit PythonPolicy(py::object adapter) : adapter_(std::move(adapter)) {
    info_ = adapter_.attr("policy_info")().cast<PolicyInfo>();
  }
  const PolicyInfo& info() const override { return info_; }
  void begin_run(RunContext& context) override {
    Open open(*this, context, false, true);
    adapter_.attr("begin_run")(open.handle());
  }
  StageDecision prepare(RunContext& context, const StageStep& step) override {
    Open open(*this, context);
    return adapter_.attr("prepare")(open.handle(), view(step)).cast<StageDecision>();
  }
  void finish(RunContext& context, const StageStep& step) override {
    Open open(*this, context);
    adapter_.attr("finish")(open.handle(), view(step));
  }
  void end_call(RunContext& context, int call) override {
    Open open(*this, context);
    adapter_.attr("end_call")(open.handle(), call);
  }
  ResidencyClaim residency(const RunContext& context) const override {
    // The runner's context is not itself const (policies::run_policy); the window keeps residency() read-only.
    Open open(*this, const_cast<RunContext&>(context), true);
    return adapter_.attr("residency")(open.handle()).cast<ResidencyClaim>();
  }

 private:
  // Opens the window on `context` for one callback and closes it (to what it was) when the callback returns.
  // The Python handle of a run is made once per run, so that the adapter sees the same object every callback.
  class Open {
   public:
    Open(const PythonPolicy& p, RunContext& context, bool read_only = false, bool new_run = false)
        : p_(p), saved_(*p.window_) {
      CallbackWindow& w = *p_.window_;
      if (new_run || p_.handle_context_ != &context || p_.handle_.is_none()) {
        ++w.run;
        w.open = &context;
        p_.handle_ = py::cast(RunAccess(p_.window_));
        p_.handle_context_ = &context;
      }
      w.open = &context;
      w.read_only = read_only;
    }
    ~Open() {
      p_.window_->open = saved_.open;
      p_.window_->read_only = saved_.read_only;
    }
    Open(const Open&) = delete;
    Open& operator=(const Open&) = delete;
    const py::object& handle() const { return p_.handle_; }

   private:
    const PythonPolicy& p_;
    CallbackWindow saved_;
  };

  py::object adapter_;
  PolicyInfo info_;
  std::shared_ptr<CallbackWindow> window_ = std::make_shared<CallbackWindow>();
  mutable py::object handle_ = py::none();
  mutable RunContext* handle_context_ = nullptr;
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

  py::class_<StepView>(m, "StageStep", "The stage step a decision is made for")
      .def_readonly("stage", &StepView::stage)
      .def_readonly("kind", &StepView::kind)
      .def_readonly("models", &StepView::models)
      .def_readonly("steps", &StepView::steps)
      .def_readonly("call", &StepView::call)
      .def_readonly("step", &StepView::step);

  py::class_<RunWeights> weights(m, "RunModelWeights", "A model's weights in a run of the runner (as ModelWeights)");
  def_model_weights_methods(weights, [](RunWeights& w, const char* call, bool moves) -> ModelWeights& {
    w.access.context(w.weights.id() + "." + call, moves);
    return w.weights;
  });

  py::class_<RunDevice>(m, "MemoryBackend", "The device memory of a run (torch.cuda's answers)")
      .def("mem_get_info",
           [](const RunDevice& d) {
             const sim::MemInfo info = d.get("mem_get_info()").mem_get_info();
             return py::make_tuple(info.free, info.total);
           })
      .def("memory_allocated", [](const RunDevice& d) { return d.get("memory_allocated()").stats().allocated; })
      .def("memory_reserved", [](const RunDevice& d) { return d.get("memory_reserved()").stats().reserved; })
      .def("max_memory_allocated", [](const RunDevice& d) { return d.get("max_memory_allocated()").stats().peak_allocated; })
      .def("max_memory_reserved", [](const RunDevice& d) { return d.get("max_memory_reserved()").stats().peak_reserved; })
      .def("memory_stats",
           [](const RunDevice& d) -> py::object {
             const auto stats = d.get("memory_stats()").device_stats();
             if (!stats) return py::dict();
             return py::cast(stats->as_memory_stats_dict());
           })
      .def("empty_cache", [](const RunDevice& d) { d.get("empty_cache()", true).empty_cache(); })
      .def("reset_peak_memory_stats", [](const RunDevice& d) { d.get("reset_peak_memory_stats()").reset_peak_stats(); })
      .def_property_readonly("allocator_model", [](const RunDevice& d) { return d.get("allocator_model").name(); });

  py::class_<RunAccess>(m, "RunContext", "What a policy may touch while deciding: the run's device and models")
      .def_property_readonly("backend",
                             [](const RunAccess& a) {
                               a.context("run.cuda");
                               return RunDevice{a};
                             })
      .def(
          "model",
          [](const RunAccess& a, const std::string& id) {
            RunContext& c = a.context("run.model(\"" + id + "\")");
            return RunWeights{a, ModelWeights(id, c.model(id), c.backend())};
          },
          py::arg("id"))
      .def("model_ids", [](const RunAccess& a) { return a.context("run.model_ids()").model_ids(); })
      .def(
          "settings",
          [](const RunAccess& a, const std::string& family) { return to_python(a.context("run.settings()").settings(family)); },
          py::arg("family"))
      .def_property_readonly("scenario", [](const RunAccess& a) { return to_python(a.context("run.scenario").scenario().to_json()); })
      .def_property_readonly("device_name", [](const RunAccess& a) { return a.context("run.device_name").scenario().device.name; })
      .def_property_readonly("capacity",
                             [](const RunAccess& a) { return a.context("run.capacity").backend().mem_get_info().total; })
      .def_property_readonly("platform",
                             [](const RunAccess& a) {
                               return a.context("run.platform").scenario().device.platform == sim::Platform::kRocm ? "rocm"
                                                                                                                  : "cuda";
                             })
      .def_property_readonly("alloc_conf", [](const RunAccess& a) { return a.context("run.alloc_conf").scenario().alloc_conf; })
      .def_property_readonly("torch_version",
                             [](const RunAccess& a) { return a.context("run.torch_version").scenario().torch->name; })
      .def(
          "allocate_buffer",
          [](const RunAccess& a, const std::string& label, py::object bytes) {
            const std::string call = "run.allocate_buffer(\"" + label + "\", bytes=" + py::str(bytes).cast<std::string>() + ")";
            RunContext& c = a.context(call, true);
            const std::uint64_t size = bytes_argument(call.c_str(), "bytes", bytes);
            try {
              return c.allocate_buffer(label, size).has_value();
            } catch (const InvalidSizeError& e) {
              throw InvalidSizeError(call + ": " + e.what());
            }
          },
          py::arg("label"), py::arg("bytes"), "A buffer the policy holds (resident by design); False when it does not fit")
      .def(
          "free_buffers",
          [](const RunAccess& a, const std::string& label) {
            a.context("run.free_buffers(\"" + label + "\")", true).free_buffers(label);
          },
          py::arg("label"))
      .def_property_readonly("buffer_bytes", [](const RunAccess& a) { return a.context("run.buffer_bytes").buffer_bytes(); });

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
