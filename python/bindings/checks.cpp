// The checks, from Python: P1-P5 on a decision log (exactly `offsim check --decisions`: the same function and
// the same report text), on a run of a policy over a scenario (`offsim eval`), and over generated cases
// (`offsim check`, the gate: RapidCheck search, shrinking, counterexample files).
#include <pybind11/stl.h>

#include <filesystem>

#include "bindings.hpp"
#include "offsim/check/gate.hpp"
#include "offsim/check/property_check.hpp"
#include "offsim/policies/decision_log.hpp"
#include "offsim/policies/eval_result.hpp"
#include "offsim/policies/scenario.hpp"

namespace offsim::python {

namespace {

using check::PropertyCheckResult;

std::string verdict(policies::Verdict v) { return std::string(policies::to_string(v)); }

}  // namespace

void bind_checks(py::module_& m) {
  py::class_<policies::DecisionLogProperty>(m, "DecisionLogProperty")
      .def_readonly("id", &policies::DecisionLogProperty::id)
      .def_property_readonly("verdict", [](const policies::DecisionLogProperty& p) { return verdict(p.verdict); })
      .def_readonly("checked", &policies::DecisionLogProperty::checked)
      .def_readonly("violations", &policies::DecisionLogProperty::violations)
      .def_readonly("detail", &policies::DecisionLogProperty::detail)
      .def_readonly("lines", &policies::DecisionLogProperty::lines);

  py::class_<policies::DecisionLogReport>(m, "DecisionLogReport", "offsim check --decisions on one log")
      .def_readonly("file", &policies::DecisionLogReport::file)
      .def_readonly("decisions", &policies::DecisionLogReport::decisions)
      .def_readonly("stages", &policies::DecisionLogReport::stages)
      .def_readonly("diagnosis", &policies::DecisionLogReport::diagnosis)
      .def_property_readonly("results",
                             [](const policies::DecisionLogReport& r) {
                               return std::vector<policies::DecisionLogProperty>(r.results.begin(), r.results.end());
                             })
      .def_property_readonly("failed", &policies::DecisionLogReport::failed)
      .def_property_readonly("text", [](const policies::DecisionLogReport& r) { return policies::format_report(r); })
      .def("__str__", [](const policies::DecisionLogReport& r) { return policies::format_report(r); });

  m.def(
      "check_decisions",
      [](const std::string& path, const std::string& root) {
        policies::DecisionLogOptions options;
        options.root = root;
        return policies::check_decision_log(std::filesystem::path(path), options);
      },
      py::arg("path"), py::arg("root"), "offsim check --decisions PATH --root ROOT");

  m.def(
      "evaluate",
      [](const std::string& policy, const std::string& scenario_path, const std::string& root, bool min_capacity) {
        const policies::Scenario scenario = policies::Scenario::load(scenario_path, root);
        policies::PropertyOptions options;
        options.check_min_capacity = min_capacity;
        return to_python(policies::to_json(policies::evaluate(policy, scenario, options)));
      },
      py::arg("policy"), py::arg("scenario"), py::arg("root"), py::arg("min_capacity") = true,
      "offsim eval: one policy on one scenario, as offsim eval --json writes it (docs/eval_json.md)");

  py::class_<PropertyCheckResult>(m, "PropertyCheckResult", "One property of one policy over generated cases")
      .def_readonly("policy", &PropertyCheckResult::policy)
      .def_property_readonly("property", [](const PropertyCheckResult& r) { return std::string(check::to_string(r.property)); })
      .def_readonly("seed", &PropertyCheckResult::seed)
      .def_readonly("cases", &PropertyCheckResult::cases)
      .def_property_readonly("outcome", [](const PropertyCheckResult& r) { return std::string(check::to_string(r.outcome)); })
      .def_property_readonly("holds", &PropertyCheckResult::holds)
      .def_property_readonly("violated", &PropertyCheckResult::violated)
      .def_property_readonly("ok", &PropertyCheckResult::ok)
      .def_property_readonly("blocks_gate", &PropertyCheckResult::blocks_gate)
      .def_readonly("classes", &PropertyCheckResult::classes)
      .def_readonly("missing_classes", &PropertyCheckResult::missing_classes)
      .def_readonly("failure", &PropertyCheckResult::failure)
      .def_readonly("counterexample_case", &PropertyCheckResult::counterexample_case)
      .def_property_readonly("counterexample",
                             [](const PropertyCheckResult& r) -> py::object {
                               return r.counterexample ? to_python(*r.counterexample) : py::none();
                             })
      .def_readonly("counterexample_file", &PropertyCheckResult::counterexample_file)
      .def_readonly("replay_command", &PropertyCheckResult::replay_command)
      .def_readonly("seconds", &PropertyCheckResult::seconds);

  m.def(
      "run_gate",
      [](const std::vector<std::string>& policies_, const std::vector<std::string>& properties,
         const std::vector<std::uint64_t>& seeds, int cases, const std::string& root, const std::string& out,
         double time_budget, const std::vector<std::string>& pipelines) {
        check::GateOptions options;
        options.policies = policies_;
        for (const std::string& p : properties) options.properties.push_back(check::parse_property(p));
        if (!seeds.empty()) options.seeds = seeds;
        options.cases = cases;
        options.root = root;
        options.counterexample_dir = out;
        options.time_budget_seconds = time_budget;
        options.scope.pipelines = pipelines;
        const check::GateResult result = check::run_gate(options);
        py::dict d;
        d["checks"] = result.checks;
        d["units_selected"] = result.units_selected;
        d["units_total"] = result.units_total;
        d["units_skipped"] = result.units_skipped;
        d["simulations"] = result.simulations;
        d["seconds"] = result.seconds;
        d["failed"] = result.failed();
        return d;
      },
      py::arg("policies"), py::arg("properties"), py::arg("seeds"), py::arg("cases"), py::arg("root"),
      py::arg("out") = "", py::arg("time_budget") = 150.0, py::arg("pipelines") = std::vector<std::string>{},
      "offsim check: every applicable property of the policies over generated cases, fixed seeds");

  m.def(
      "check_property_on",
      [](const std::string& policy, const std::string& property, const std::string& scenario_path, const std::string& root) {
        const policies::Scenario scenario = policies::Scenario::load(scenario_path, root);
        return check::check_property_on(policy, check::parse_property(property), scenario);
      },
      py::arg("policy"), py::arg("property"), py::arg("scenario"), py::arg("root"),
      "offsim check --replay: one property on one stored counterexample");
}

}  // namespace offsim::python
