// Byte sizes as users write them (--capacity, scenario files): every value either reads exactly or is
// refused with a ConfigError naming the input; nothing ends as std::stoull's "internal error".
#include "offsim/sim/bytes.hpp"

#include <gtest/gtest.h>

#include <string>

#include "offsim/sim/errors.hpp"

namespace offsim {
namespace {

void expect_refused(const std::string& text, const std::string& needle) {
  try {
    (void)parse_bytes(text, "--capacity");
    ADD_FAILURE() << "accepted " << text;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--capacity: cannot read \"" + text + "\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ParseBytes, ReadsEvery64BitCountExactly) {
  EXPECT_EQ(parse_bytes("18446744073709551615", "x"), 18446744073709551615ULL);
  EXPECT_EQ(parse_bytes("44.98GiB", "x"), 48296907244ULL);  // 44.98 x 2^30, rounded
  EXPECT_EQ(parse_bytes("16GB", "x"), 16000000000ULL);
  EXPECT_EQ(parse_bytes("0", "x"), 0ULL);
}

TEST(ParseBytes, RefusesWhatDoesNotFit64BitsNamingTheInput) {
  expect_refused("18446744073709551616", "too large: above 2^64 - 1 bytes");
  expect_refused("99999999999999999999999", "too large");
  expect_refused(std::string(400, '9') + ".5", "too large");
  expect_refused("17179869184GiB", "too large");
  expect_refused("12 parsecs", "unknown unit");
}

}  // namespace
}  // namespace offsim
