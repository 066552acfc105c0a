// `offsim-record`, run as `offsim record` (cli/record_command.cpp hands the command line over): run a VAE
// decode or encode with random weights on the CPU under the allocation recorder and write its trace
// (real/record_vae.hpp). The one program that links libtorch, so that no other command pays for loading
// it. Errors are caught once, in main(), with the exit codes of every offsim command.
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "offsim/real/record_vae.hpp"
#include "offsim/real/scope_sidecar.hpp"
#include "offsim/real/trace_stats.hpp"
#include "offsim/sim/atomic_output_file.hpp"
#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/trace_formats.hpp"
#include "offsim/sim/trace_source.hpp"
#include "progress.hpp"
#include "usage_error.hpp"

namespace offsim::cli {
namespace {

struct RecordOptions {
  std::string model;
  std::string op;
  std::string size;
  std::string dtype;
  std::string attention = "efficient";
  std::string conv_workspace = "implicit";
  std::string feature_cache = "diffusers-clones";
  std::string causal_pad = "materialised";
  std::string rms_norm_fp32 = "on";
  std::string upsample_fp32 = "on";
  int threads = 1;
  std::uint64_t seed = 0;
  std::string output;
  std::string cpu_output;
  bool quiet = false;
  std::string command;
};

template <typename T>
T parse_or_throw(const std::optional<T>& value, const std::string& option, const std::string& text,
                 const char* expected) {
  if (!value) throw ConfigError(option + " '" + text + "' is not one of " + expected);
  return *value;
}

bool parse_on_off(const std::string& option, const std::string& text) {
  if (text == "on") return true;
  if (text == "off") return false;
  throw ConfigError(option + " '" + text + "' is not one of on, off");
}

real::RecordRequest to_request(const RecordOptions& o) {
  real::RecordRequest r;
  r.model = parse_or_throw(real::parse_vae_model(o.model), "--model", o.model,
                           "sd15-vae, sdxl-vae, flux1-vae, qwen-image-vae");
  r.op = parse_or_throw(real::parse_vae_op(o.op), "--op", o.op, "decode, encode");
  r.dtype = parse_or_throw(real::parse_dtype(o.dtype), "--dtype", o.dtype, "fp32, bf16");
  const auto x = o.size.find('x');
  std::size_t used_w = 0;
  std::size_t used_h = 0;
  try {
    if (x == std::string::npos) throw std::invalid_argument("no x");
    r.width = std::stoll(o.size.substr(0, x), &used_w);
    r.height = std::stoll(o.size.substr(x + 1), &used_h);
  } catch (const std::exception&) {
    throw ConfigError("--size '" + o.size + "' is not WIDTHxHEIGHT in pixels, e.g. 1248x832");
  }
  if (used_w != x || used_h != o.size.size() - x - 1) {
    throw ConfigError("--size '" + o.size + "' is not WIDTHxHEIGHT in pixels, e.g. 1248x832");
  }
  r.switches.attention = parse_or_throw(real::parse_attention_impl(o.attention), "--attention", o.attention,
                                        "math, efficient, legacy-fp32-softmax");
  r.switches.conv_workspace = parse_or_throw(real::parse_conv_workspace(o.conv_workspace), "--conv-workspace",
                                             o.conv_workspace, "implicit, column-buffer");
  r.switches.feature_cache = parse_or_throw(real::parse_feature_cache(o.feature_cache), "--feature-cache",
                                            o.feature_cache, "diffusers-clones, none");
  r.switches.causal_pad =
      parse_or_throw(real::parse_causal_pad(o.causal_pad), "--causal-pad", o.causal_pad, "materialised, last-tap");
  r.switches.rms_norm_fp32 = parse_on_off("--rms-norm-fp32", o.rms_norm_fp32);
  r.switches.upsample_fp32 = parse_on_off("--upsample-fp32", o.upsample_fp32);
  r.threads = o.threads;
  r.seed = o.seed;
  r.command = o.command;
  real::validate(r);
  return r;
}

nlohmann::json summary_json(const real::RecordResult& result, const real::AnnotatedTrace& trace) {
  const real::LiveBytes live = real::live_bytes(trace.trace);
  return {{"label", result.label},
          {"parameter_count", result.parameter_count},
          {"input_shape", result.input_shape},
          {"output_shape", result.output_shape},
          {"forward_seconds", result.forward_seconds},
          {"peak_allocated_bytes", live.peak},
          {"peak_event", live.peak_event},
          {"peak_scope", result.recording.scope_path(trace.event_scopes.at(live.peak_event))},
          {"allocations", live.allocations},
          {"bytes_allocated_at_end", live.at_end}};
}

/// Where a trace goes and in which format: chosen by the file's extension, as `offsim convert` does.
struct TraceOutput {
  std::string path;
  sim::TraceFormat format;
};

/// Refuses, before the forward pass (minutes at full size), an output that could not be written: an
/// extension that names no trace format, a folder that does not exist or cannot take a file. The probe is
/// the atomic writer's own temporary file, removed again.
TraceOutput checked_output(const std::string& option, const std::string& path) {
  TraceOutput out{path, sim::TraceFormat::kOffsimTrace};
  try {
    out.format = sim::trace_format_for_output(path);
  } catch (const ConfigError& e) {
    throw UsageError(option + " " + e.what());
  }
  for (const std::string& file : {path, real::scope_sidecar_path(path)}) {
    sim::AtomicOutputFile probe(file);
  }
  return out;
}

void write_trace(const TraceOutput& output, const real::RecordResult& result, const real::AnnotatedTrace& trace) {
  sim::TraceVectorSource source(trace.trace);
  sim::write_trace(output.path, output.format, source);
  real::write_scope_sidecar(real::scope_sidecar_path(output.path), trace, result.recording,
                            summary_json(result, trace));
}

void run(const RecordOptions& options, int& exit_code) {
  real::RecordRequest request = from_command_line([&] { return to_request(options); });
  const TraceOutput output = checked_output("-o", options.output);
  const std::optional<TraceOutput> cpu_output =
      options.cpu_output.empty() ? std::nullopt : std::optional(checked_output("--cpu-trace", options.cpu_output));
  if (!options.quiet) {
    std::cerr << "offsim record: " << real::to_string(request.model) << ' ' << real::to_string(request.op) << ' '
              << request.width << 'x' << request.height << ' ' << real::to_string(request.dtype) << " on "
              << request.threads << " CPU thread(s) (" << real::describe(request.switches) << ")...\n";
  }
  // On a terminal: modules of the forward pass entered so far, with the one running now.
  Progress progress("record (modules)", 0, options.quiet);
  request.on_module = [&progress](std::size_t done, std::size_t total, const std::string& module) {
    progress.update(done, total, module);
  };
  const real::RecordResult result = real::record_vae(request);
  progress.finish();
  write_trace(output, result, result.cuda_like.annotated);
  if (cpu_output) write_trace(*cpu_output, result, result.cpu_trace);

  const real::LiveBytes cpu = real::live_bytes(result.cpu_trace.trace);
  const real::LiveBytes cuda = real::live_bytes(result.cuda_like.annotated.trace);
  if (!options.quiet) {
    std::cout << result.label << ": " << result.parameter_count << " parameters, forward " << result.forward_seconds
              << " s (build " << result.build_seconds << " s)\n"
              << "  CPU recording: " << cpu.allocations << " allocations, peak allocated " << format_bytes(cpu.peak)
              << " in " << result.recording.scope_path(result.cpu_trace.event_scopes.at(cpu.peak_event)) << "\n"
              << "  CUDA-like:     " << cuda.allocations << " allocations, peak allocated " << format_bytes(cuda.peak)
              << " in " << result.recording.scope_path(result.cuda_like.annotated.event_scopes.at(cuda.peak_event))
              << "\n"
              << "  rewrite: " << result.cuda_like.notes << "\n"
              << "  wrote " << options.output << " (+ " << real::scope_sidecar_path(options.output) << ")";
    if (!options.cpu_output.empty()) std::cout << " and " << options.cpu_output;
    std::cout << "\n";
  }
  exit_code = kExitOk;
}

void add_record_options(CLI::App& cmd, int& exit_code) {
  auto options = std::make_shared<RecordOptions>();
  cmd.description(
      "Run a VAE decode/encode with random weights on the CPU (libtorch) and write its allocation trace: the "
      "CUDA-like rewrite to -o, optionally the raw CPU recording to --cpu-trace, each in the format its "
      "extension names (.otrace, .pickle/.pkl, .json, as offsim convert). Each trace gets a "
      "<trace>.scopes.json sidecar naming the module and kernel of every event.");
  cmd.add_option("--model", options->model, "sd15-vae, sdxl-vae, flux1-vae or qwen-image-vae")->required();
  cmd.add_option("--op", options->op, "decode or encode")->required();
  cmd.add_option("--size", options->size, "image size WIDTHxHEIGHT in pixels, multiples of 8 (e.g. 1248x832)")
      ->required();
  cmd.add_option("--dtype", options->dtype, "fp32 or bf16 (fp16 has no CPU convolution in libtorch 1.13)")
      ->required();
  cmd.add_option("--attention", options->attention, "math, efficient or legacy-fp32-softmax (AutoencoderKL only)")
      ->capture_default_str();
  cmd.add_option("--conv-workspace", options->conv_workspace,
                 "implicit (no workspace) or column-buffer (im2col/vol2col GEMM workspace per convolution)")
      ->capture_default_str();
  cmd.add_option("--feature-cache", options->feature_cache, "Qwen-Image: diffusers-clones or none")
      ->capture_default_str();
  cmd.add_option("--causal-pad", options->causal_pad, "Qwen-Image: materialised or last-tap")->capture_default_str();
  cmd.add_option("--rms-norm-fp32", options->rms_norm_fp32, "Qwen-Image RMS norm in fp32 for bf16 inputs: on/off")
      ->capture_default_str();
  cmd.add_option("--upsample-fp32", options->upsample_fp32, "nearest upsampling in fp32 where diffusers does: on/off")
      ->capture_default_str();
  cmd.add_option("--threads", options->threads, "libtorch intra-op threads")->capture_default_str();
  cmd.add_option("--seed", options->seed, "seed of the random weights and input")->capture_default_str();
  cmd.add_option("-o,--output", options->output,
                 "output trace, the CUDA-like rewrite (.otrace, .pickle/.pkl or .json by its extension)")
      ->required();
  cmd.add_option("--cpu-trace", options->cpu_output, "also write the raw CPU recording here (same formats)");
  cmd.add_flag("-q,--quiet", options->quiet, "print nothing on success, and no progress");
  cmd.callback([options, &cmd, &exit_code] {
    std::ostringstream command;
    command << "offsim record";
    for (const auto& result : cmd.get_options()) {
      for (const std::string& value : result->results()) command << ' ' << result->get_name() << ' ' << value;
    }
    options->command = command.str();
    run(*options, exit_code);
  });
}

}  // namespace
}  // namespace offsim::cli

int main(int argc, char** argv) {
  CLI::App app{"", "offsim record"};
  int exit_code = offsim::cli::kExitOk;
  offsim::cli::add_record_options(app, exit_code);
  app.footer("Exit codes: 0 success; 2 offsim could not do the job (an output it cannot write, I/O); 64 usage "
             "error (docs/exit_codes.md).");
  // The exit codes of every offsim command (cli/main.cpp, docs/exit_codes.md).
  const auto usage = [](const std::string& what) {
    std::cerr << "offsim record: usage error: " << what << "\n(offsim record --help lists the options)\n";
    return offsim::cli::kExitUsage;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    return usage(e.what());
  } catch (const offsim::cli::UsageError& e) {
    return usage(e.what());
  } catch (const offsim::Error& e) {
    std::cerr << "offsim: error: " << e.what() << "\n";
    return offsim::cli::kExitError;
  } catch (const std::exception& e) {
    std::cerr << "offsim: internal error: " << e.what() << "\n";
    return offsim::cli::kExitError;
  }
  return exit_code;
}
