#include "offsim/real/record_vae.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <sstream>
#include <unordered_set>

#include <torch/torch.h>
#include <torch/version.h>

#include "offsim/real/allocation_recorder.hpp"
#include "offsim/real/scoped_module.hpp"
#include "offsim/real/vae_module.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::real {
namespace {

std::string utc_now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + ")";
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The scope paths of the modules an `op` runs: every scoped module of its half of the model (diffusers'
/// encoder / quant_conv for an encode, post_quant_conv / decoder for a decode).
std::unordered_set<std::string> modules_of_op(torch::nn::Module& vae, VaeOp op) {
  const std::vector<std::string> roots = op == VaeOp::kDecode ? std::vector<std::string>{"decoder", "post_quant_conv"}
                                                              : std::vector<std::string>{"encoder", "quant_conv"};
  std::unordered_set<std::string> out;
  for (const std::shared_ptr<torch::nn::Module>& module : vae.modules(/*include_self=*/false)) {
    const auto* scoped = dynamic_cast<const ScopedModule*>(module.get());
    if (scoped == nullptr) continue;
    const std::string& path = scoped->scope_path();
    for (const std::string& root : roots) {
      if (path.compare(0, root.size(), root) == 0 && (path.size() == root.size() || path[root.size()] == '.')) {
        out.insert(path);
        break;
      }
    }
  }
  return out;
}

/// Installs request.on_module as the recorder's module observer for the scope of one forward pass; it
/// hears of the op's modules only (not the pipeline's own scopes such as "vae.decode").
class ModuleProgress {
 public:
  ModuleProgress(AllocationRecorder& recorder, const RecordRequest& request, std::unordered_set<std::string> modules)
      : recorder_(recorder) {
    if (!request.on_module) return;
    recorder_.set_module_observer([callback = request.on_module, modules = std::move(modules),
                                   done = std::size_t{0}](const std::string& module) mutable {
      if (!modules.contains(module)) return;
      ++done;
      callback(done, std::max(done, modules.size()), module);
    });
  }
  ~ModuleProgress() { recorder_.set_module_observer({}); }
  ModuleProgress(const ModuleProgress&) = delete;
  ModuleProgress& operator=(const ModuleProgress&) = delete;

 private:
  AllocationRecorder& recorder_;
};

}  // namespace

void validate(const RecordRequest& r) {
  if (r.width <= 0 || r.height <= 0 || r.width % 8 != 0 || r.height % 8 != 0) {
    throw ConfigError("record: size " + std::to_string(r.width) + "x" + std::to_string(r.height) +
                      " must be positive multiples of 8 (the VAEs downsample by 8)");
  }
  if (r.dtype == Dtype::kFloat16) {
    throw ConfigError("record: fp16 cannot be recorded on the CPU (libtorch 1.13 has no CPU fp16 convolution or "
                      "GroupNorm); use fp32 or bf16, or run the modules on a GPU");
  }
  if (r.model == VaeModel::kQwenImage && r.switches.attention == AttentionImpl::kLegacyFp32Softmax) {
    throw ConfigError("record: attention 'legacy-fp32-softmax' is an AutoencoderKL processor; Qwen-Image always "
                      "calls scaled_dot_product_attention (use math or efficient)");
  }
  if (r.threads < 1) throw ConfigError("record: --threads must be at least 1");
  if (r.switches.efficient_attention_chunk < 1) throw ConfigError("record: efficient attention chunk must be >= 1");
}

RecordResult record_vae(const RecordRequest& request) {
  validate(request);
  RecordResult result;
  result.torch_version = std::string("libtorch ") + TORCH_VERSION + " (TORCH_VERSION of the headers built against), CPU";
  std::ostringstream label;
  label << to_string(request.model) << ' ' << to_string(request.op) << ' ' << request.width << 'x' << request.height
        << ' ' << to_string(request.dtype);
  result.label = label.str();

  at::set_num_threads(request.threads);
  torch::manual_seed(request.seed);
  AllocationRecorder& recorder = AllocationRecorder::instance();
  torch::NoGradGuard no_grad;

  const auto build_start = std::chrono::steady_clock::now();
  std::shared_ptr<VaeModule> vae = make_vae(request.model, request.switches);
  const torch::ScalarType dtype = to_scalar_type(request.dtype);
  vae->to(torch::kCPU, dtype);
  result.parameter_count = parameter_count(*vae);
  result.build_seconds = seconds_since(build_start);

  const bool decode = request.op == VaeOp::kDecode;
  result.input_shape = decode ? vae->latent_shape(request.height, request.width)
                              : vae->image_shape(request.height, request.width);
  torch::Tensor input = torch::randn(result.input_shape, torch::TensorOptions().dtype(torch::kFloat));
  if (!decode) input = input.clamp(-1.0, 1.0);
  input = input.to(dtype);

  const auto forward_start = std::chrono::steady_clock::now();
  torch::Tensor output;
  const ModuleProgress progress(recorder, request, modules_of_op(*vae, request.op));
  recorder.start();
  try {
    output = decode ? vae->decode(input) : vae->encode(input);
  } catch (...) {
    try {
      (void)recorder.stop();
    } catch (const Error&) {
      // The forward pass's own error is the one to report.
    }
    throw;
  }
  result.recording = recorder.stop();
  result.forward_seconds = seconds_since(forward_start);
  result.output_shape.assign(output.sizes().begin(), output.sizes().end());

  sim::TraceMetadata metadata;
  metadata.label = result.label;
  metadata.provenance.kind = sim::ProvenanceKind::kCpuRecordedSimulated;
  metadata.provenance.source = "offsim real/: libtorch CPU forward pass with random weights (diffusers architecture)";
  metadata.provenance.torch_version = result.torch_version;
  metadata.provenance.command = request.command;
  metadata.provenance.date = utc_now_iso8601();
  std::ostringstream notes;
  notes << "CPU-recorded: structure only (tensor sizes and liveness of a real libtorch forward pass), provisional "
           "until validated against GPU measurements. "
        << result.label << ", input " << shape_string(result.input_shape) << ", output "
        << shape_string(result.output_shape) << ", " << result.parameter_count
        << " parameters (weights resident before the trace starts, not in it). Switches: "
        << describe(request.switches) << ". Threads " << request.threads << ", seed " << request.seed
        << ", forward " << result.forward_seconds << " s.";
  metadata.provenance.notes = notes.str();

  sim::TraceMetadata cpu_metadata = metadata;
  cpu_metadata.provenance.notes += " Raw CPU recording, no rewrite: includes CPU-only kernel buffers (oneDNN reorders) "
                                   "and no GPU kernel workspaces.";
  result.cpu_trace = to_cpu_trace(result.recording, cpu_metadata);
  RewriteOptions options;
  options.conv_workspace = request.switches.conv_workspace;
  result.cuda_like = rewrite_cuda_like(result.recording, options, metadata);
  return result;
}

}  // namespace offsim::real
