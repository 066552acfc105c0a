// RapidCheck's seed under ctest (rapidcheck_seed.cpp, compiled into every test program): fixed, and said
// again after a failure with the command that reruns the test.
#pragma once

#include <string>

namespace offsim::test {

/// The gate's seed (offsim check); RapidCheck's properties in the test programs run from it.
inline constexpr const char* kRapidCheckSeed = "20261126";

/// RC_PARAMS for a test program, given the environment's (nullptr: unset): a seed or a reproduce string
/// given there wins; otherwise the fixed seed, after any other keys given.
std::string rc_params_with_seed(const char* given);

/// What a failed test prints: the environment and filter that rerun exactly it.
std::string rerun_hint(const std::string& rc_params, const std::string& suite, const std::string& name);

}  // namespace offsim::test
