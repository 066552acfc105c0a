// The fixed RapidCheck seed of the test programs (tests/common/rapidcheck_seed.cpp); ctest's
// rapidcheck_seed runs a property test program to see it used.
#include "common/rapidcheck_seed.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace offsim::test {
namespace {

TEST(RapidCheckSeed, FixedUnlessTheEnvironmentGivesOne) {
  EXPECT_EQ(rc_params_with_seed(nullptr), "seed=20261126");
  EXPECT_EQ(rc_params_with_seed(""), "seed=20261126");
  EXPECT_EQ(rc_params_with_seed("max_success=1000"), "max_success=1000 seed=20261126");
  EXPECT_EQ(rc_params_with_seed("seed=7"), "seed=7");
  EXPECT_EQ(rc_params_with_seed("reproduce=BchVhpmbpBXYlNHIvZGIhBXbwVGbu"), "reproduce=BchVhpmbpBXYlNHIvZGIhBXbwVGbu");
}

TEST(RapidCheckSeed, ThisProgramRunsFromIt) {
  const char* params = std::getenv("RC_PARAMS");
  ASSERT_NE(params, nullptr);
  EXPECT_NE(std::string(params).find("seed="), std::string::npos) << params;
}

TEST(RapidCheckSeed, AFailureSaysHowToRerunIt) {
  EXPECT_EQ(rerun_hint("seed=20261126", "Suite", "Name"),
            "rerun: RC_PARAMS=\"seed=20261126\" <this test program> --gtest_filter='Suite.Name' (or ctest -R "
            "'Suite.Name'; another seed: RC_PARAMS=\"seed=N\")");
}

}  // namespace
}  // namespace offsim::test
