// `offsim record` as a library call: request validation, provenance, the rewrite's workspaces on a whole
// decode, and the trace surviving offsim's trace format.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "offsim/real/record_vae.hpp"
#include "offsim/real/scope_sidecar.hpp"
#include "offsim/sim/errors.hpp"
#include "offsim/sim/trace_file.hpp"

namespace offsim::real {
namespace {

RecordRequest small_sd_decode() {
  RecordRequest r;
  r.model = VaeModel::kSd15;
  r.op = VaeOp::kDecode;
  r.width = 64;
  r.height = 48;
  r.dtype = Dtype::kBFloat16;
  r.command = "test";
  return r;
}

TEST(RecordRequest, RejectsWhatCannotRun) {
  EXPECT_NO_THROW(validate(small_sd_decode()));
  auto with = [](auto change) {
    RecordRequest r = small_sd_decode();
    change(r);
    return r;
  };
  EXPECT_THROW(validate(with([](RecordRequest& r) { r.width = 100; })), ConfigError);
  EXPECT_THROW(validate(with([](RecordRequest& r) { r.height = 0; })), ConfigError);
  EXPECT_THROW(validate(with([](RecordRequest& r) { r.dtype = Dtype::kFloat16; })), ConfigError);
  EXPECT_THROW(validate(with([](RecordRequest& r) { r.threads = 0; })), ConfigError);
  EXPECT_THROW(validate(with([](RecordRequest& r) {
                 r.model = VaeModel::kQwenImage;
                 r.switches.attention = AttentionImpl::kLegacyFp32Softmax;
               })),
               ConfigError);
}

// `offsim record` shows progress from on_module: every module of the decoder, in forward order, against
// a total that the count never passes (an image runs each module once).
TEST(RecordVae, ReportsEachModuleOfTheOpAsTheForwardEntersIt) {
  RecordRequest request = small_sd_decode();
  std::vector<std::string> modules;
  std::size_t last_done = 0;
  std::size_t total = 0;
  request.on_module = [&](std::size_t done, std::size_t modules_total, const std::string& module) {
    EXPECT_EQ(done, last_done + 1);
    EXPECT_LE(done, modules_total);
    last_done = done;
    total = modules_total;
    modules.push_back(module);
  };
  (void)record_vae(request);
  ASSERT_FALSE(modules.empty());
  EXPECT_EQ(modules.size(), total);  // the decoder's modules, each once
  EXPECT_EQ(modules.front().rfind("decoder", 0), 0u) << modules.front();
  EXPECT_NE(std::find(modules.begin(), modules.end(), "decoder.up_blocks.3"), modules.end());
  for (const std::string& m : modules) EXPECT_EQ(m.find("encoder"), std::string::npos) << m;
  // The observer is removed with the recording: a later run without one reports nothing to the old one.
  const std::size_t seen = modules.size();
  (void)record_vae(small_sd_decode());
  EXPECT_EQ(modules.size(), seen);
}

TEST(RecordVae, Sd15DecodeWithColumnBuffersRoundTripsThroughTheTraceFormat) {
  RecordRequest request = small_sd_decode();
  request.switches.conv_workspace = ConvWorkspace::kColumnBuffer;
  const RecordResult result = record_vae(request);
  EXPECT_EQ(result.parameter_count, 83'653'863u);
  EXPECT_EQ(result.output_shape, (std::vector<std::int64_t>{1, 3, 48, 64}));
  const sim::Trace& cuda = result.cuda_like.annotated.trace;
  EXPECT_EQ(cuda.metadata.provenance.kind, sim::ProvenanceKind::kCpuRecordedSimulated);
  EXPECT_EQ(result.cpu_trace.trace.metadata.provenance.kind, sim::ProvenanceKind::kCpuRecordedSimulated);
  EXPECT_NE(cuda.metadata.provenance.notes.find("cuda-like rewrite"), std::string::npos);
  EXPECT_NE(cuda.metadata.provenance.notes.find("conv-workspace=column-buffer"), std::string::npos);
  EXPECT_EQ(result.cpu_trace.trace.metadata.provenance.notes.find("cuda-like rewrite"), std::string::npos);
  // The largest column buffer is a 3x3 conv over 256 channels at full resolution (up_blocks[2]'s upsampler
  // conv and up_blocks[3].resnets[0].conv1).
  const auto& conv = result.cuda_like.stats.of(KernelKind::kConvolution);
  EXPECT_EQ(conv.largest_added_bytes, 256u * 9 * 48 * 64 * 2);
  // One mid-block attention: bf16, head dim 512 > 128, so the fp32 accumulator of 48 tokens x 512.
  const auto& attention = result.cuda_like.stats.of(KernelKind::kFusedAttention);
  EXPECT_EQ(attention.kernels, 1u);
  EXPECT_EQ(attention.added_bytes, 48u * 512 * 4);

  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "offsim_record_vae_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "sd.otrace").string();
  sim::write_trace_file(path, cuda);
  write_scope_sidecar(scope_sidecar_path(path), result.cuda_like.annotated, result.recording, {{"label", "x"}});
  const sim::Trace back = sim::read_trace_file(path);
  EXPECT_EQ(back.events, cuda.events);
  EXPECT_EQ(back.metadata.provenance.notes, cuda.metadata.provenance.notes);
  EXPECT_EQ(back.metadata.provenance.kind, sim::ProvenanceKind::kCpuRecordedSimulated);
  std::ifstream sidecar(scope_sidecar_path(path));
  const nlohmann::json json = nlohmann::json::parse(sidecar);
  EXPECT_EQ(json["trace_events"].get<std::size_t>(), cuda.events.size());
  EXPECT_EQ(json["event_scopes"].size(), cuda.events.size());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace offsim::real
