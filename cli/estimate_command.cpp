// `offsim estimate --vae FAMILY --op decode --size WxH [--dtype bf16] [--backend cuda] [--tile N] [--json]`:
// what every transcribed working-memory estimator that applies to this VAE workload would hand its cache,
// and whether the workload is inside the domain upstream claims (where P2/P5 judge it). Used by
// scripts/vae_table.py to put estimates beside simulated and published peaks.
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "commands.hpp"
#include "offsim/policies/estimator.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "table.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

struct EstimateOptions {
  std::string vae;
  std::string op = "decode";
  std::string size;
  std::string dtype = "bf16";
  std::string backend = "cuda";
  std::optional<int> tile;
  bool json = false;
};

policies::VaeWorkload parse_workload(const EstimateOptions& o) {
  policies::VaeWorkload w;
  w.family = policies::parse_vae_family(o.vae);
  w.op = policies::parse_vae_op(o.op);
  const auto x = o.size.find('x');
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    w.pixel_width = std::stoi(o.size.substr(0, x));
    w.pixel_height = std::stoi(o.size.substr(x + 1));
  } catch (const std::exception&) {
    throw ConfigError("--size " + o.size + ": expected WIDTHxHEIGHT in pixels, e.g. 1248x832");
  }
  if (w.pixel_width <= 0 || w.pixel_height <= 0) throw ConfigError("--size " + o.size + ": sides must be > 0");
  w.dtype = policies::parse_dtype(o.dtype);
  w.backend = policies::parse_backend(o.backend);
  w.tile_size = o.tile;
  return w;
}

// Every field comes from the command line: a value offsim does not know is a usage error.
policies::VaeWorkload workload_of(const EstimateOptions& o) {
  return from_command_line([&] { return parse_workload(o); });
}

int run(const EstimateOptions& o) {
  const policies::Workload workload = workload_of(o);
  nlohmann::json rows = nlohmann::json::array();
  Table table({"estimator", "estimate", "in domain", "label"});
  for (const policies::Estimator& e : policies::all_estimators()) {
    if (!e.domain.applies_to(workload)) continue;
    const std::optional<std::uint64_t> bytes = e.estimate(workload);
    const std::string why_not = e.domain.why_not_covered(workload);
    rows.push_back({{"estimator", e.id},
                    {"label", e.label},
                    {"upstream", e.upstream},
                    {"estimate_bytes", bytes ? nlohmann::json(*bytes) : nlohmann::json(nullptr)},
                    {"in_domain", why_not.empty()},
                    {"why_not_in_domain", why_not}});
    table.add({e.id, bytes ? format_bytes(*bytes) : "passes none", why_not.empty() ? "yes" : "no", e.label});
  }
  if (rows.empty()) throw ConfigError("no transcribed estimator applies to " + policies::describe(workload));
  if (o.json) {
    std::cout << nlohmann::json{{"format", "offsim-estimates/1"}, {"workload", policies::describe(workload)},
                                {"estimates", rows}}
                     .dump(1)
              << "\n";
  } else {
    std::cout << policies::describe(workload) << "\n";
    table.print(std::cout);
  }
  return kExitOk;
}

}  // namespace

void add_estimate_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<EstimateOptions>();
  CLI::App* cmd = app.add_subcommand("estimate", "Every transcribed working-memory estimator's answer for a VAE workload");
  cmd->add_option("--vae", options->vae, "VAE family (sd15, sdxl, flux1, flux2, qwen_image, wan21, ...)")->required();
  cmd->add_option("--op", options->op, "decode or encode");
  cmd->add_option("--size", options->size, "WIDTHxHEIGHT in pixels")->required();
  cmd->add_option("--dtype", options->dtype, "weights dtype: fp32, fp16, bf16");
  cmd->add_option("--backend", options->backend, "cuda or rocm (estimators with per-backend constants)");
  cmd->add_option("--tile", options->tile, "tile size the call site passes (tiled decode)");
  cmd->add_flag("--json", options->json, "JSON on stdout");
  cmd->callback([options, &exit_code] { exit_code = run(*options); });
}

}  // namespace offsim::cli
