// `offsim calibrate [INPUT...]`: fit working-memory estimators to measured peaks, prove them on points they
// never saw, judge upstream's constants on the same points, and hand back code (docs/calibration.md).
// Inputs: traces/published (the default, with every committed GPU run under traces/gpu/), a real/gpu/run.sh
// output folder or its vae_peaks.jsonl, a user's CSV / JSON points file. Outputs: a terminal table, --json,
// --html, --emit invokeai|comfyui. Exit codes (docs/exit_codes.md): 0 done; 1 with --strict when a judged estimator
// under-estimates a point it was not calibrated on; 2 an input that cannot be read; 64 a wrong command line.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <set>

#include "calibrate_emit.hpp"
#include "commands.hpp"
#include "offsim/policies/calibration.hpp"
#include "offsim/policies/calibration_inputs.hpp"
#include "offsim/policies/estimator.hpp"
#include "offsim/policies/estimator_override.hpp"
#include "offsim/report/calibration_report.hpp"
#include "offsim/report/vega_assets.hpp"
#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "repository_root.hpp"
#include "table.hpp"
#include "usage_error.hpp"

namespace offsim::cli {

namespace {

namespace fs = std::filesystem;
using namespace offsim::policies;

struct CalibrateOptions {
  std::vector<std::string> inputs;
  std::vector<std::string> models, ops, backends, dtypes, sources, variants;
  std::vector<std::string> forms;
  std::string holdout_above = "1024x1024";
  double headroom = 0;
  double linear_tolerance = 0.10;
  std::vector<std::string> judge;
  std::vector<std::string> targets;
  std::string use_form = "invokeai";
  std::string json_path, html_path, emit, emit_out, date;
  bool points_table = false;
  bool strict = false;
  bool quiet = false;
  std::string root;
  std::string command_line;
};

std::uint64_t parse_size_pixels(const std::string& text) {
  const auto x = text.find('x');
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    const long long w = std::stoll(text.substr(0, x));
    const long long h = std::stoll(text.substr(x + 1));
    if (w <= 0 || h <= 0) throw std::invalid_argument("sides");
    return static_cast<std::uint64_t>(w) * static_cast<std::uint64_t>(h);
  } catch (const std::exception&) {
    throw UsageError("--holdout-above " + text + ": expected WIDTHxHEIGHT in pixels, e.g. 1024x1024");
  }
}

std::string today() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &utc);
  return buf;
}

std::vector<fs::path> default_inputs(const fs::path& given_root) {
  // Relative to the working directory when it is the checkout, so that origins in the output read the same
  // on every machine.
  std::error_code ec;
  const fs::path root = fs::equivalent(given_root, fs::current_path(), ec) ? fs::path() : given_root;
  std::vector<fs::path> out{root / "traces/published"};
  const fs::path gpu = root / "traces/gpu";
  if (fs::is_directory(gpu)) {
    std::vector<fs::path> runs;
    for (const auto& entry : fs::directory_iterator(gpu)) {
      if (entry.is_directory() && fs::exists(entry.path() / "vae_peaks.jsonl")) runs.push_back(entry.path());
    }
    std::sort(runs.begin(), runs.end());
    out.insert(out.end(), runs.begin(), runs.end());
  }
  return out;
}

template <typename T, typename Parse>
bool selected(const std::vector<std::string>& wanted, T value, Parse parse) {
  if (wanted.empty()) return true;
  for (const std::string& w : wanted) {
    if (parse(w) == value) return true;
  }
  return false;
}

std::vector<CalibrationPoint> apply_selection(std::vector<CalibrationPoint> points, const CalibrateOptions& o) {
  std::vector<CalibrationPoint> out;
  for (CalibrationPoint& p : points) {
    if (!selected(o.models, p.model, parse_vae_family) || !selected(o.ops, p.op, parse_vae_op) ||
        !selected(o.backends, p.backend, parse_backend) || !selected(o.dtypes, p.dtype, parse_dtype)) {
      continue;
    }
    if (!o.sources.empty() && std::none_of(o.sources.begin(), o.sources.end(), [&](const std::string& s) {
          return p.source.find(s) != std::string::npos;
        })) {
      continue;
    }
    if (!o.variants.empty() && std::none_of(o.variants.begin(), o.variants.end(), [&](const std::string& v) {
          return v == (p.variant.empty() ? "default" : p.variant);
        })) {
      continue;
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string ratio(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", r);
  return buf;
}

std::string percent(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", 100 * f);
  return buf;
}

std::string range(const JudgementSummary& s) {
  if (s.points == 0) return "-";
  return ratio(s.min_ratio) + ".." + ratio(s.max_ratio);
}

std::string failures(const JudgementSummary& s) {
  if (s.points == 0) return "-";
  return std::to_string(s.p2_failures) + "/" + std::to_string(s.points);
}

void print_group(const CalibrationGroup& g, const CalibrationOptions& options, const std::string& band, bool points_table) {
  std::set<std::string> sources;
  for (const CalibrationPoint& p : g.points) sources.insert(p.source);
  std::cout << "\n== " << g.name() << ": " << g.points.size() << " points, " << size_label(g.points.front()) << ".."
            << size_label(g.points.back()) << ", " << sources.size() << " source" << (sources.size() == 1 ? "" : "s") << "\n";

  if (!g.linearity.empty()) {
    std::cout << "Linear in pixels? Implied constant (peak / (H x W x element size)) per source:\n";
    Table t({"source", "sizes", "constant", "spread", "largest rise", "verdict"});
    for (const Linearity& l : g.linearity) {
      const std::string name = l.source + (l.variant.empty() ? "" : " (" + l.variant + ")");
      const std::string sizes = std::to_string(l.points.size()) + " points, " + size_label(g.points[l.points.front()]) + ".." +
                                size_label(g.points[l.points.back()]);
      char constants[64];
      std::snprintf(constants, sizeof constants, "%.0f..%.0f", l.min_constant, l.max_constant);
      const std::string rise = l.largest_rise > 0 ? percent(l.largest_rise) + " (" + size_label(g.points[l.rise_from]) +
                                                        " -> " + size_label(g.points[l.rise_to]) + ")"
                                                  : "never rises";
      const std::string verdict = l.proportional ? "linear to " + size_label(g.points[l.points.back()])
                                                 : "not linear (tolerance " + percent(options.linear_tolerance).substr(1) + ")";
      t.add({name, sizes, constants, percent(l.spread).substr(1), rise, verdict});
    }
    t.print(std::cout);
  }

  std::cout << "Fits (each bounds all " << g.points.size() << " points; a verdict comes only from a fit that did not see the point):\n";
  Table t({"form", "fitted", "E/T on its points", "leave-one-out P2 fails", "E/T", "band fit <= " + band,
           "band > " + band + " P2 fails", "E/T"});
  for (const FormResult& r : g.forms) {
    t.add({std::string(to_string(r.form)), describe(r.fit), range(summarize(r.calibration)), failures(summarize(r.leave_one_out)),
           range(summarize(r.leave_one_out)), r.band_fit ? describe(*r.band_fit) : "-", failures(summarize(r.band)),
           range(summarize(r.band))});
  }
  t.print(std::cout);
  for (const FormResult& r : g.forms) {
    for (const auto* list : {&r.leave_one_out, &r.band}) {
      for (const Judgement& j : *list) {
        if (j.p2_holds) continue;
        const CalibrationPoint& p = g.points[j.point];
        std::cout << "  P2 FAIL " << to_string(r.form) << (list == &r.band ? " band" : " leave-one-out") << ": " << describe(p)
                  << ": E " << format_bytes(j.estimate) << " < T " << format_bytes(p.peak_reserved_growth) << ", short by "
                  << format_bytes(p.peak_reserved_growth - j.estimate) << " (E/T " << ratio(j.ratio) << ", judged by "
                  << describe(*j.judged_by) << ")\n";
      }
    }
  }

  if (!g.upstream.empty()) {
    std::cout << "Upstream estimators on these points (held out = points whose source their constants were not chosen from):\n";
    Table u({"estimator", "points", "P2 fails", "P5 over", "E/T", "held out", "P2 fails", "E/T"});
    for (const UpstreamJudgement& e : g.upstream) {
      std::vector<Judgement> held;
      for (const Judgement& j : e.points) {
        if (!j.seen) held.push_back(j);
      }
      const JudgementSummary all = summarize(e.points), out = summarize(held);
      u.add({e.estimator, std::to_string(all.points), std::to_string(all.p2_failures), std::to_string(all.p5_over), range(all),
             std::to_string(out.points), out.points ? std::to_string(out.p2_failures) : "-", range(out)});
    }
    u.print(std::cout);
  }

  if (points_table) {
    Table pt({"#", "size", "dtype", "source", "variant", "T", "implied C"});
    for (std::size_t i = 0; i < g.points.size(); ++i) {
      const CalibrationPoint& p = g.points[i];
      char c[32];
      std::snprintf(c, sizeof c, "%.1f", implied_constant(p));
      pt.add({std::to_string(i), size_label(p), std::string(to_string(p.dtype)), p.source, p.variant,
              format_bytes(p.peak_reserved_growth), c});
    }
    pt.print(std::cout);
  }
}

// Everything taken from the command line, checked before any input is read: a wrong value is a usage error
// (exit 64, docs/exit_codes.md), a wrong input file an error (exit 2).
void check_command_line(const CalibrateOptions& o) {
  from_command_line([&] {
    for (const std::string& m : o.models) (void)parse_vae_family(m);
    for (const std::string& op : o.ops) (void)parse_vae_op(op);
    for (const std::string& b : o.backends) (void)parse_backend(b);
    for (const std::string& d : o.dtypes) (void)parse_dtype(d);
    for (const std::string& id : o.judge) {
      if (id != "none") (void)find_estimator(id);
    }
    for (const std::string& id : o.targets) (void)find_estimator(id);
    return 0;
  });
  if (!(o.headroom >= 0 && o.headroom < 10)) throw UsageError("--headroom must be in [0, 10)");
  if (!(o.linear_tolerance >= 0)) throw UsageError("--linear-tolerance must be >= 0");
  if (!o.emit.empty() && o.emit != "invokeai" && o.emit != "comfyui") {
    throw UsageError("--emit " + o.emit + ": expected invokeai or comfyui");
  }
  if (o.json_path == "-" && !o.emit.empty() && o.emit_out.empty()) {
    throw UsageError("--json - and --emit both write to stdout: give --emit-out FILE or --json FILE");
  }
  if (!o.emit_out.empty() && o.emit.empty()) throw UsageError("--emit-out needs --emit invokeai or comfyui");
  for (const std::string& i : o.inputs) {
    if (!fs::exists(i)) throw UsageError(i + ": no such file or folder");
  }
}

int run(const CalibrateOptions& o) {
  check_command_line(o);
  const fs::path root = from_command_line([&] { return repository_root(o.root); });
  // Fail on an unusable output option before reading anything.
  std::optional<report::VegaAssets> assets;
  if (!o.html_path.empty()) assets = report::load_vega_assets({root, OFFSIM_SOURCE_DIR});
  CalibrationOptions options;
  if (!o.forms.empty()) {
    options.forms.clear();
    for (const std::string& f : o.forms) options.forms.push_back(from_command_line([&] { return parse_fit_form(f); }));
  }
  options.holdout_above_pixels = parse_size_pixels(o.holdout_above);
  options.headroom = o.headroom;
  options.linear_tolerance = o.linear_tolerance;
  if (!o.judge.empty()) {
    options.judge = std::vector<std::string>{};
    for (const std::string& id : o.judge) {
      if (id != "none") options.judge->push_back(id);
    }
  }
  const FitForm use_form = from_command_line([&] { return parse_fit_form(o.use_form); });
  if (use_form == FitForm::comfyui) throw UsageError("--use-form takes invokeai, invokeai_fixed or piecewise");

  CalibrationInput input;
  std::vector<fs::path> paths;
  for (const std::string& i : o.inputs) paths.emplace_back(i);
  if (paths.empty()) paths = default_inputs(root);
  for (const fs::path& p : paths) merge_calibration_points(input, read_calibration_input(p));
  const std::size_t read = input.points.size();
  std::vector<CalibrationPoint> points = apply_selection(std::move(input.points), o);
  if (points.empty()) throw UsageError("no calibration point matches the selection (" + std::to_string(read) + " read)");
  const std::size_t used = points.size();
  CalibrationReport report = calibrate(std::move(points), options);
  report.notes = input.notes;
  report.notes.push_back(std::to_string(used) + " of " + std::to_string(read) + " points selected");

  const std::vector<EstimatorOverride> overrides =
      from_command_line([&] { return overrides_from_calibration(report, o.targets, use_form); });
  nlohmann::json doc = to_json(report);
  doc["command"] = o.command_line;
  doc["overrides"] = nlohmann::json::array();
  for (const EstimatorOverride& ov : overrides) doc["overrides"].push_back(to_json(ov));

  const bool json_to_stdout = o.json_path == "-";
  const bool emit_to_stdout = !o.emit.empty() && o.emit_out.empty();
  if (!o.quiet && !json_to_stdout && !emit_to_stdout) {
    for (const std::string& n : report.notes) std::cout << n << "\n";
    for (const CalibrationGroup& g : report.groups) print_group(g, report.options, o.holdout_above, o.points_table);
    std::cout << "\nE = estimate, T = measured peak reserved growth. P2: E >= T. Leave-one-out judges each point by a fit "
                 "without every point of its size; the band fit sees only points of at most "
              << o.holdout_above << " pixels.\n";
  }
  if (!o.json_path.empty()) {
    if (json_to_stdout) {
      std::cout << doc.dump(1) << "\n";
    } else {
      sim::AtomicOutputFile out(o.json_path);
      out.write(doc.dump(1) + "\n");
      out.commit();
      if (!o.quiet) std::cout << "wrote " << o.json_path << "\n";
    }
  }
  if (assets) {
    report::write_calibration_report(report, doc, *assets, o.html_path);
    if (!o.quiet && !json_to_stdout && !emit_to_stdout) std::cout << "wrote " << o.html_path << "\n";
  }
  if (!o.emit.empty()) {
    EmitOptions e;
    e.project = o.emit;
    e.form = use_form;
    e.date = o.date.empty() ? today() : o.date;
    e.command = o.command_line;
    std::string warnings;
    const std::string code = from_command_line([&] { return emit_python(report, e, warnings); });
    std::cerr << warnings;
    if (o.emit_out.empty()) {
      std::cout << code;
    } else {
      sim::AtomicOutputFile out(o.emit_out);
      out.write(code);
      out.commit();
      if (!o.quiet) std::cout << "wrote " << o.emit_out << "\n";
    }
  }
  if (o.strict) {
    // Only verdicts a fit or an estimator earned on points it did not see; a fit's leave-one-out failures are
    // expected of a smallest bound (its largest point, left out, is under-estimated) and say how much headroom
    // it needs, so they are reported, not gated on.
    std::size_t failures = 0;
    for (const CalibrationGroup& g : report.groups) {
      for (const UpstreamJudgement& u : g.upstream) {
        for (const Judgement& j : u.points) {
          if (j.seen || !j.in_domain || j.p2_holds) continue;
          ++failures;
          std::cerr << "offsim calibrate: P2 FAIL " << u.estimator << " on " << describe(g.points[j.point]) << ": E "
                    << format_bytes(j.estimate) << " < T " << format_bytes(g.points[j.point].peak_reserved_growth)
                    << " (" << g.points[j.point].origin << ")\n";
        }
      }
    }
    if (failures > 0) return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

void add_calibrate_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate", "Fit working-memory estimators to measured peaks, prove them on unseen points, emit code");
  cmd->add_option("inputs", o->inputs,
                  "traces/published (default, with traces/gpu/*), a real/gpu/run.sh output folder or vae_peaks.jsonl, "
                  "a points file (.csv, .json; docs/calibration.md)");
  cmd->add_option("--model", o->models, "Keep this VAE family (repeatable): qwen_image, sdxl, flux2, ...");
  cmd->add_option("--op", o->ops, "Keep decode or encode (repeatable)");
  cmd->add_option("--backend", o->backends, "Keep cuda / rocm / xpu / mps (repeatable)");
  cmd->add_option("--dtype", o->dtypes, "Keep fp16 / bf16 / fp32 (repeatable)");
  cmd->add_option("--source", o->sources, "Keep points whose source contains TEXT (repeatable)");
  cmd->add_option("--variant", o->variants, "Keep points of this variant; 'default' = none (repeatable)");
  cmd->add_option("--form", o->forms, "Fit this form (repeatable; default all): invokeai, invokeai_fixed, comfyui, piecewise");
  cmd->add_option("--holdout-above", o->holdout_above, "Band test: fit on sizes up to WxH pixels, judge the larger (default 1024x1024)");
  cmd->add_option("--headroom", o->headroom, "Scale every fitted constant by 1 + FRACTION (default 0: the smallest bound)");
  cmd->add_option("--linear-tolerance", o->linear_tolerance,
                  "Linear in pixels = implied constant within this fraction over a source's sizes (default 0.10)");
  cmd->add_option("--judge", o->judge, "Judge only these estimator ids (repeatable; 'none' for none; default every one that applies)");
  cmd->add_option("--target", o->targets,
                  "Estimator id(s) the JSON's overrides and --emit are for (default: the newest InvokeAI and ComfyUI ones)");
  cmd->add_option("--use-form", o->use_form, "Form for InvokeAI outputs (--emit invokeai, overrides): invokeai, invokeai_fixed, piecewise");
  cmd->add_option("--json", o->json_path, "Write the results as JSON ('-' for stdout; docs/calibration.md)");
  cmd->add_option("--html", o->html_path, "Write a self-contained HTML report with charts (docs/reports.md)");
  cmd->add_option("--emit", o->emit, "Print a Python estimator for this project: invokeai or comfyui");
  cmd->add_option("--emit-out", o->emit_out, "Write the --emit code to this file instead of stdout");
  cmd->add_option("--date", o->date, "Date written into --emit code (default: today, UTC)");
  cmd->add_flag("--points", o->points_table, "Also print every point (size, source, T, implied constant)");
  cmd->add_flag("--strict", o->strict,
                "Exit 1 when a judged estimator under-estimates a point inside its domain that it was not calibrated on");
  cmd->add_option("--root", o->root, "offsim checkout holding traces/ (default: found)");
  cmd->add_flag("--quiet,-q", o->quiet, "Print only what --json - / --emit ask for");
  cmd->callback([o, cmd, &exit_code] {
    std::string line = "offsim calibrate";
    for (const std::string& i : o->inputs) line += " " + i;
    const std::set<std::string> flags{"--points", "--strict", "--quiet"};
    for (const auto* opt : cmd->get_options()) {
      if (opt->get_name() == "inputs" || opt->get_name() == "--help" || opt->count() == 0) continue;
      for (const std::string& r : opt->results()) {
        line += " " + opt->get_name() + (flags.count(opt->get_name()) ? "" : " " + r);
      }
    }
    o->command_line = line;
    exit_code = run(*o);
  });
}

}  // namespace offsim::cli
