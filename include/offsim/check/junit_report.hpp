// JUnit XML for CI systems: one testsuite per policy, one testcase per (property, seed), with the
// counterexample and its replay command in the failure text.
#pragma once

#include <string>
#include <vector>

#include "offsim/check/property_check.hpp"

namespace offsim::check {

std::string junit_xml(const std::vector<PropertyCheckResult>& checks, const std::string& suite_name);

}  // namespace offsim::check
