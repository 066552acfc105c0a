// The libtorch VAEs have exactly the published checkpoints' parameters, under diffusers' state-dict names.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "offsim/real/vae_module.hpp"

namespace offsim::real {
namespace {

std::set<std::string> parameter_names(const torch::nn::Module& module) {
  std::set<std::string> names;
  for (const auto& item : module.named_parameters()) names.insert(item.key());
  return names;
}

TEST(VaeParameterCount, Sd15MatchesPublished) {
  const auto vae = make_vae(VaeModel::kSd15, {});
  EXPECT_EQ(parameter_count(*vae), 83'653'863u);
  EXPECT_EQ(parameter_count(*vae), facts(VaeModel::kSd15).parameter_count);
}

TEST(VaeParameterCount, SdxlMatchesPublished) {
  const auto vae = make_vae(VaeModel::kSdxl, {});
  EXPECT_EQ(parameter_count(*vae), 83'653'863u);
}

TEST(VaeParameterCount, Flux1MatchesPublished) {
  const auto vae = make_vae(VaeModel::kFlux1, {});
  EXPECT_EQ(parameter_count(*vae), 83'819'683u);
  const auto names = parameter_names(*vae);
  EXPECT_EQ(names.count("quant_conv.weight"), 0u) << "FLUX.1 has use_quant_conv = False";
  EXPECT_EQ(names.count("post_quant_conv.weight"), 0u) << "FLUX.1 has use_post_quant_conv = False";
  EXPECT_EQ(vae->named_parameters()["decoder.conv_in.weight"].sizes(), (std::vector<std::int64_t>{512, 16, 3, 3}));
  EXPECT_EQ(vae->named_parameters()["encoder.conv_out.weight"].sizes(), (std::vector<std::int64_t>{32, 512, 3, 3}));
}

TEST(VaeParameterCount, QwenImageMatchesCheckpoint) {
  const auto vae = make_vae(VaeModel::kQwenImage, {});
  EXPECT_EQ(parameter_count(*vae), 126'892'531u);
  EXPECT_EQ(parameter_tensor_count(*vae), 194u);
  EXPECT_EQ(parameter_count(*vae->named_children()["decoder"]), 73'295'331u);
}

TEST(VaeParameterNames, FollowDiffusersStateDict) {
  const auto sd = parameter_names(*make_vae(VaeModel::kSd15, {}));
  for (const char* name : {"encoder.conv_in.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                           "encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.mid_block.attentions.0.to_q.bias",
                           "decoder.mid_block.attentions.0.to_out.0.weight", "decoder.mid_block.attentions.0.group_norm.weight",
                           "decoder.up_blocks.3.resnets.0.conv_shortcut.weight", "decoder.up_blocks.2.upsamplers.0.conv.weight",
                           "decoder.conv_norm_out.bias", "quant_conv.weight", "post_quant_conv.bias"}) {
    EXPECT_EQ(sd.count(name), 1u) << name;
  }
  EXPECT_EQ(sd.count("decoder.up_blocks.3.upsamplers.0.conv.weight"), 0u) << "the last up block has no upsampler";

  const auto qwen = parameter_names(*make_vae(VaeModel::kQwenImage, {}));
  for (const char* name : {"decoder.conv_in.weight", "decoder.mid_block.attentions.0.to_qkv.weight",
                           "decoder.mid_block.attentions.0.norm.gamma", "decoder.up_blocks.0.upsamplers.0.resample.1.weight",
                           "decoder.up_blocks.0.upsamplers.0.time_conv.weight", "decoder.up_blocks.1.resnets.0.conv_shortcut.bias",
                           "decoder.up_blocks.3.resnets.2.conv2.weight", "encoder.down_blocks.2.resample.1.weight",
                           "encoder.down_blocks.5.time_conv.weight", "quant_conv.weight", "post_quant_conv.weight"}) {
    EXPECT_EQ(qwen.count(name), 1u) << name;
  }
  EXPECT_EQ(qwen.count("decoder.up_blocks.2.upsamplers.0.time_conv.weight"), 0u) << "up block 2 is upsample2d";
}

}  // namespace
}  // namespace offsim::real
