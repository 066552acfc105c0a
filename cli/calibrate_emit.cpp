#include "calibrate_emit.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "offsim/sim/bytes.hpp"
#include "offsim/sim/errors.hpp"

namespace offsim::cli {

namespace {

using namespace offsim::policies;

struct Fitted {
  const CalibrationGroup* group = nullptr;
  const FormResult* result = nullptr;
};

// The fitted form per (op, backend) of the one VAE the report is about.
struct Selection {
  VaeFamily model = VaeFamily::qwen_image;
  std::map<VaeOp, std::map<Backend, Fitted>> by_op;
};

Selection select(const CalibrationReport& report, FitForm form) {
  if (report.groups.empty()) throw ConfigError("--emit: no calibrated group");
  Selection s;
  s.model = report.groups.front().model;
  for (const CalibrationGroup& g : report.groups) {
    if (g.model != s.model) {
      throw ConfigError("--emit writes one VAE's function: the selection holds " + std::string(to_string(s.model)) +
                        " and " + std::string(to_string(g.model)) + "; add --model");
    }
    if (g.backend != Backend::cuda && g.backend != Backend::rocm) {
      throw ConfigError("--emit: InvokeAI and ComfyUI branch on ROCm versus the rest; select --backend cuda / rocm (found " +
                        std::string(to_string(g.backend)) + ")");
    }
    if (g.points.front().frames != 1 || is_video_vae(g.model)) {
      throw ConfigError("--emit writes image-VAE functions; " + std::string(to_string(g.model)) + " is a video VAE");
    }
    const auto it = std::find_if(g.forms.begin(), g.forms.end(), [&](const FormResult& r) { return r.form == form; });
    if (it == g.forms.end()) {
      throw ConfigError("--emit needs the " + std::string(to_string(form)) + " fit; it was not run (--form)");
    }
    s.by_op[g.op][g.backend] = {&g, &*it};
  }
  return s;
}

std::string ratio_text(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", r);
  return buf;
}

// One comment line per (op, backend): what the constant bounds and how it fared on points it did not see.
std::string provenance_line(VaeOp op, Backend backend, const Fitted& f) {
  const CalibrationGroup& g = *f.group;
  std::set<std::string> sources;
  for (const CalibrationPoint& p : g.points) sources.insert(p.source);
  std::string text = std::string(to_string(op)) + " " + (backend == Backend::rocm ? "ROCm" : "CUDA") + ": " +
                     describe(f.result->fit) + ", bounds " + std::to_string(g.points.size()) + " points " +
                     size_label(g.points.front()) + ".." + size_label(g.points.back()) + " from ";
  bool first = true;
  for (const std::string& s : sources) {
    text += (first ? "" : ", ") + s;
    first = false;
  }
  const JudgementSummary loo = summarize(f.result->leave_one_out);
  if (loo.points > 0) {
    text += "; leave-one-out: " + std::to_string(loo.p2_failures) + " of " + std::to_string(loo.points) +
            " held-out points under-estimated, E/T " + ratio_text(loo.min_ratio) + ".." + ratio_text(loo.max_ratio);
  }
  return text;
}

// Wraps `text` into "# " comment lines of at most `width` characters, indented by `indent`; lines after the
// first start with `hanging` after the "# ".
std::string comment(const std::string& text, const std::string& indent, const std::string& hanging = "",
                    std::size_t width = 110) {
  std::string out, line;
  std::istringstream words(text);
  std::string word;
  bool first = true;
  auto flush = [&] {
    out += indent + "# " + (first ? "" : hanging) + line + "\n";
    first = false;
    line.clear();
  };
  while (words >> word) {
    const std::size_t used = indent.size() + 2 + (first ? 0 : hanging.size()) + line.size();
    if (!line.empty() && used + 1 + word.size() > width) flush();
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) flush();
  return out;
}

std::string citations(const Selection& s) {
  std::set<std::string> seen;
  std::string out;
  for (const auto& [op, by_backend] : s.by_op) {
    for (const auto& [backend, f] : by_backend) {
      for (const CalibrationPoint& p : f.group->points) {
        const std::string c = p.source + ": " + p.provenance + (p.citation.empty() ? "" : ", " + p.citation);
        if (seen.insert(c).second) out += c + "\n";
      }
    }
  }
  return out;
}

std::string python_int(std::uint64_t v) {
  if (v != 0 && v % MiB == 0) return std::to_string(v / MiB) + " * 2**20";
  return std::to_string(v);
}

// One knot per line, as a formatter with a 120-column limit would leave it.
std::string knots_literal(const FittedEstimate& fit) {
  std::string out = "(\n";
  for (const Knot& k : fit.knots) {
    out += "        (" + std::to_string(k.pixels) + ", " + std::to_string(k.bytes_per_element_byte) + "),\n";
  }
  return out + "    )";
}

std::string invokeai_vae_type(VaeFamily f) {
  switch (f) {
    case VaeFamily::qwen_image: return "AutoencoderKLQwenImage";
    case VaeFamily::sd15:
    case VaeFamily::sdxl: return "AutoencoderKL | AutoencoderTiny";
    case VaeFamily::flux1:
    case VaeFamily::z_image: return "AutoEncoder";
    case VaeFamily::flux2: return "AutoencoderKLFlux2";
    case VaeFamily::sd3:
    case VaeFamily::cogview4: return "AutoencoderKL";
    case VaeFamily::anima: return "AutoencoderKLWan";
    default: return "torch.nn.Module";
  }
}

void warn_gaps(const Selection& s, std::string& warnings, std::string& header_notes) {
  for (const VaeOp op : {VaeOp::decode, VaeOp::encode}) {
    const auto it = s.by_op.find(op);
    if (it == s.by_op.end()) {
      const std::string w = "no " + std::string(to_string(op)) + " peaks were calibrated: the function raises for " +
                            std::string(to_string(op)) + "s";
      warnings += "offsim calibrate: warning: " + w + "\n";
      header_notes += w + ". ";
      continue;
    }
    for (const Backend b : {Backend::cuda, Backend::rocm}) {
      if (it->second.count(b) == 0) {
        const Backend other = b == Backend::cuda ? Backend::rocm : Backend::cuda;
        const std::string w = std::string(to_string(op)) + " has no " + std::string(to_string(b)) +
                              " point: the " + std::string(to_string(other)) + " constant is used on every backend; " +
                              "measure " + std::string(to_string(b)) + " before shipping";
        warnings += "offsim calibrate: warning: " + w + "\n";
        header_notes += w + ". ";
      }
    }
  }
}

// `if is_rocm` / single-backend selection of a per-backend expression.
std::string per_backend(const std::map<Backend, Fitted>& by_backend, const std::string& rocm_test,
                        const std::function<std::string(const FittedEstimate&)>& expr) {
  const auto rocm = by_backend.find(Backend::rocm);
  const auto cuda = by_backend.find(Backend::cuda);
  if (rocm != by_backend.end() && cuda != by_backend.end()) {
    return expr(rocm->second.result->fit) + " if " + rocm_test + " else " + expr(cuda->second.result->fit);
  }
  return expr((rocm != by_backend.end() ? rocm : cuda)->second.result->fit);
}

std::string header(const std::string& project, const EmitOptions& o, const std::string& where, const Selection& s,
                   const std::string& notes) {
  std::string out = comment("Generated for " + project + " by `" + o.command + "` on " + o.date + ".", "");
  out += comment(where, "");
  out += comment("Constants: each is the smallest of its form that bounds every calibration point (P2: estimate >= "
                 "measured peak reserved growth), so they carry no headroom beyond the largest point; review them, "
                 "and add headroom with --headroom if the data is thin.",
                 "");
  if (!notes.empty()) out += comment("NOTE: " + notes, "");
  out += "#\n# Calibration points (peak reserved growth, one fresh process per point, untiled):\n";
  std::istringstream lines(citations(s));
  std::string line;
  while (std::getline(lines, line)) out += comment("- " + line, "", "  ");
  return out;
}

std::string emit_invokeai(const Selection& s, const EmitOptions& o, const std::string& notes) {
  const std::string model(to_string(s.model));
  std::string out = header("InvokeAI", o,
                           "Paste into invokeai/backend/util/vae_working_memory.py and pass its value as working_mem_bytes "
                           "where the " + model + " VAE decodes and encodes (LoadedModel.model_on_device).",
                           s, notes);
  const bool piecewise = o.form == FitForm::piecewise;
  std::string upper = model;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  const std::string knots_name = "_" + upper + "_VAE_WORKING_MEMORY_KNOTS";
  if (piecewise) {
    out += "\n\n# (pixels, bytes per element byte) at each calibrated size, per (operation, is_rocm).\n";
    out += knots_name + " = {\n";
    for (const auto& [op, by_backend] : s.by_op) {
      for (const auto& [backend, f] : by_backend) {
        out += "    (\"" + std::string(to_string(op)) + "\", " + (backend == Backend::rocm ? "True" : "False") +
               "): " + knots_literal(f.result->fit) + ",\n";
      }
    }
    out += "}\n\n\ndef _working_memory_per_element_byte(knots, pixels: int) -> int:\n"
           "    \"\"\"Linear between the calibrated sizes, rounded up; beyond them, the nearest size's bytes per pixel.\"\"\"\n"
           "    first_pixels, first_value = knots[0]\n"
           "    last_pixels, last_value = knots[-1]\n"
           "    if pixels <= first_pixels:\n"
           "        return -(-first_value * pixels // first_pixels)\n"
           "    if pixels >= last_pixels:\n"
           "        return -(-last_value * pixels // last_pixels)\n"
           "    for (lo_pixels, lo_value), (hi_pixels, hi_value) in zip(knots, knots[1:]):\n"
           "        if pixels < hi_pixels:\n"
           "            span = hi_pixels - lo_pixels\n"
           "            return -(-(lo_value * (hi_pixels - pixels) + hi_value * (pixels - lo_pixels)) // span)\n"
           "    return last_value\n";
  }
  out += "\n\ndef estimate_vae_working_memory_" + model + "(\n    operation: Literal[\"encode\", \"decode\"], image_tensor: torch.Tensor, vae: " +
         invokeai_vae_type(s.model) + "\n) -> int:\n";
  out += "    \"\"\"Estimate the working memory required by the invocation in bytes.\n\n";
  out += "    Calibrated with `offsim calibrate` on " + o.date + " against measured peak *reserved* memory growth (see the\n"
         "    comment above this function for the points and their sources).\n    \"\"\"\n";
  out += "    latent_scale_factor_for_operation = LATENT_SCALE_FACTOR if operation == \"decode\" else 1\n\n"
         "    h = latent_scale_factor_for_operation * image_tensor.shape[-2]\n"
         "    w = latent_scale_factor_for_operation * image_tensor.shape[-1]\n"
         "    element_size = next(vae.parameters()).element_size()\n\n";
  for (const VaeOp op : {VaeOp::decode, VaeOp::encode}) {
    const auto it = s.by_op.find(op);
    if (it == s.by_op.end()) continue;
    for (const auto& [backend, f] : it->second) out += comment(provenance_line(op, backend, f), "    ", "  ");
  }
  bool both_backends = false;
  for (const auto& [op, by_backend] : s.by_op) both_backends = both_backends || by_backend.size() == 2;
  if (both_backends) out += "    is_rocm = torch.version.hip is not None\n";
  const char* branch = "    if";
  for (const VaeOp op : {VaeOp::decode, VaeOp::encode}) {
    const std::string name(to_string(op));
    out += std::string(op == VaeOp::decode ? branch : "    elif") + " operation == \"" + name + "\":\n";
    const auto it = s.by_op.find(op);
    if (it == s.by_op.end()) {
      out += "        raise NotImplementedError(\"offsim calibrate had no measured " + name + " peaks for this VAE\")\n";
      continue;
    }
    const bool branches = it->second.size() == 2;
    if (piecewise) {
      out += "        pixels = h * w\n";
      if (branches) {
        out += "        knots = " + knots_name + "[(\"" + name + "\", is_rocm)]\n";
      } else {
        const bool rocm = it->second.count(Backend::rocm) == 1;
        out += "        knots = " + knots_name + "[(\"" + name + "\", " + (rocm ? "True" : "False") + ")]\n";
      }
      out += "        working_memory = element_size * _working_memory_per_element_byte(knots, pixels)\n";
      continue;
    }
    out += "        scaling_constant = " +
           per_backend(it->second, "is_rocm", [](const FittedEstimate& f) { return std::to_string(f.constant); }) + "\n";
    bool fixed = false;
    for (const auto& [backend, f] : it->second) fixed = fixed || f.result->fit.fixed_bytes > 0;
    if (fixed) {
      out += "        fixed_bytes = " +
             per_backend(it->second, "is_rocm", [](const FittedEstimate& f) { return python_int(f.fixed_bytes); }) + "\n";
      out += "        working_memory = h * w * element_size * scaling_constant + fixed_bytes\n";
    } else {
      out += "        working_memory = h * w * element_size * scaling_constant\n";
    }
  }
  out += "    else:\n        raise ValueError(f\"unknown operation {operation!r}\")\n\n    return int(working_memory)\n";
  return out;
}

std::string emit_comfyui(const Selection& s, const EmitOptions& o, const std::string& notes) {
  const std::string model(to_string(s.model));
  const int scale = vae_spatial_scale(s.model);
  std::string out = header("ComfyUI", o,
                           "Paste into comfy/sd.py (which imports `from comfy import model_management`) and install them "
                           "in VAE.__init__'s branch for the " + model + " VAE: self.memory_used_decode = " + model +
                               "_vae_memory_used_decode; self.memory_used_encode = " + model + "_vae_memory_used_encode.",
                           s, notes);
  for (const VaeOp op : {VaeOp::decode, VaeOp::encode}) {
    const std::string name(to_string(op));
    out += "\n\ndef " + model + "_vae_memory_used_" + name + "(shape, dtype):\n";
    if (op == VaeOp::decode) {
      out += "    \"\"\"Bytes one decode needs per batch element; shape is the latent's, (B, C, h, w) or (B, C, t, h, w).\"\"\"\n";
    } else {
      out += "    \"\"\"Bytes one encode needs per batch element; shape is the cropped image's, (B, 3, H, W) or (1, 3, T, H, W).\"\"\"\n";
    }
    const auto it = s.by_op.find(op);
    if (it == s.by_op.end()) {
      out += "    raise NotImplementedError(\"offsim calibrate had no measured " + name + " peaks for this VAE\")\n";
      continue;
    }
    for (const auto& [backend, f] : it->second) out += comment(provenance_line(op, backend, f), "    ", "  ");
    out += "    factor = " +
           per_backend(it->second, "model_management.is_amd()",
                       [](const FittedEstimate& f) { return std::to_string(f.constant); }) +
           "\n";
    out += "    frames = shape[2] if len(shape) == 5 else 1\n";
    if (op == VaeOp::decode) {
      out += "    return (factor * frames * shape[-2] * shape[-1] * (" + std::to_string(scale) + " * " + std::to_string(scale) +
             ")) * model_management.dtype_size(dtype)\n";
    } else {
      out += "    return (factor * frames * shape[-2] * shape[-1]) * model_management.dtype_size(dtype)\n";
    }
  }
  return out;
}

}  // namespace

std::string emit_python(const CalibrationReport& report, const EmitOptions& options, std::string& warnings) {
  if (options.project != "invokeai" && options.project != "comfyui") {
    throw ConfigError("--emit " + options.project + ": expected invokeai or comfyui");
  }
  const bool comfy = options.project == "comfyui";
  if (!comfy && options.form == FitForm::comfyui) throw ConfigError("--emit invokeai takes the invokeai, invokeai_fixed or piecewise form");
  const Selection s = select(report, comfy ? FitForm::comfyui : options.form);
  std::string notes;
  warn_gaps(s, warnings, notes);
  return comfy ? emit_comfyui(s, options, notes) : emit_invokeai(s, options, notes);
}

}  // namespace offsim::cli
