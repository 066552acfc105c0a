// Every test program's RapidCheck properties run from a fixed seed, so that CI is reproducible: RapidCheck
// otherwise draws a fresh random seed on every run (rapidcheck's src/detail/Configuration.cpp reads
// RC_PARAMS once, at the first property). A failing test prints how to rerun it from the same seed.
#include "common/rapidcheck_seed.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

namespace offsim::test {

std::string rc_params_with_seed(const char* given) {
  const std::string params = given ? given : "";
  if (params.find("seed=") != std::string::npos || params.find("reproduce=") != std::string::npos) return params;
  return params.empty() ? std::string("seed=") + kRapidCheckSeed : params + " seed=" + kRapidCheckSeed;
}

std::string rerun_hint(const std::string& rc_params, const std::string& suite, const std::string& name) {
  const std::string test = suite + "." + name;
  return "rerun: RC_PARAMS=\"" + rc_params + "\" <this test program> --gtest_filter='" + test + "' (or ctest -R '" +
         test + "'; another seed: RC_PARAMS=\"seed=N\")";
}

namespace {

class RerunHint : public ::testing::EmptyTestEventListener {
 public:
  explicit RerunHint(std::string params) : params_(std::move(params)) {}
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) std::cerr << rerun_hint(params_, info.test_suite_name(), info.name()) << "\n";
  }

 private:
  std::string params_;
};

// Before main (gtest_main), hence before any property reads RC_PARAMS.
const bool kSeeded = [] {
  const std::string params = rc_params_with_seed(std::getenv("RC_PARAMS"));
  setenv("RC_PARAMS", params.c_str(), 1);
  ::testing::UnitTest::GetInstance()->listeners().Append(new RerunHint(params));
  return true;
}();

}  // namespace

}  // namespace offsim::test
