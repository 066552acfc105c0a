// `offsim record` as a library call: build a VAE with random weights, run one decode or encode on the CPU
// under the allocation recorder, and return the raw CPU trace and its CUDA-like rewrite. Torch-free
// interface, so the command line does not compile libtorch headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "offsim/real/cuda_rewrite.hpp"
#include "offsim/real/recording.hpp"
#include "offsim/real/switches.hpp"
#include "offsim/real/vae_model.hpp"

namespace offsim::real {

struct RecordRequest {
  VaeModel model = VaeModel::kSd15;
  VaeOp op = VaeOp::kDecode;
  std::int64_t width = 0;   // output image pixels (decode) or input image pixels (encode)
  std::int64_t height = 0;
  Dtype dtype = Dtype::kFloat32;
  RealSwitches switches;
  int threads = 1;          // libtorch intra-op threads (at::set_num_threads)
  std::uint64_t seed = 0;   // weights and inputs
  std::string command;      // recorded in the provenance
  /// Called as the forward pass enters each module (scope path, e.g. "decoder.up_blocks.2"): modules
  /// entered so far and the modules of the op's half of the model (encoder or decoder), which each run
  /// once for an image; a larger count raises the total. Empty: no progress reported.
  std::function<void(std::size_t modules_done, std::size_t modules_total, const std::string& module)> on_module;
};

/// Throws offsim::ConfigError naming the field when the request cannot run: sizes not positive multiples
/// of 8, fp16 on the CPU (no CPU fp16 convolution in libtorch 1.13), the legacy attention processor on
/// Qwen-Image (which always calls SDPA), threads < 1.
void validate(const RecordRequest& request);

struct RecordResult {
  Recording recording;
  AnnotatedTrace cpu_trace;    // provenance cpu-recorded, no rewrite
  RewrittenTrace cuda_like;    // provenance cpu-recorded, rewrite stated in notes
  std::uint64_t parameter_count = 0;
  std::vector<std::int64_t> input_shape;
  std::vector<std::int64_t> output_shape;
  double build_seconds = 0;
  double forward_seconds = 0;
  std::string torch_version;
  std::string label;           // "qwen-image-vae decode 1248x832 bf16"
};

RecordResult record_vae(const RecordRequest& request);

}  // namespace offsim::real
