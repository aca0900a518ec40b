// The test harness's own comparisons: a NaN or Inf must fail them, never slip through as a pass.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

using namespace rt::test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool expect_close_throws(const std::vector<double>& got, const std::vector<double>& want) {
  try {
    expect_close("probe", got.data(), want.data(), got.size(), 1e-3, 1e-3);
  } catch (const Failure&) {
    return true;
  }
  return false;
}

}  // namespace

TEST(comparisons_fail_on_nan_and_inf) {
  CHECK(!expect_close_throws({1.0, 2.0}, {1.0, 2.0}), "equal finite values must pass");
  CHECK(expect_close_throws({1.0, 2.5}, {1.0, 2.0}), "a plain mismatch must fail");
  CHECK(expect_close_throws({1.0, kNaN}, {1.0, 2.0}), "NaN got");
  CHECK(expect_close_throws({1.0, 2.0}, {kNaN, 2.0}), "NaN want");
  CHECK(expect_close_throws({kNaN}, {kNaN}), "NaN on both sides");
  CHECK(expect_close_throws({5.0}, {kInf}), "finite got, infinite want (the bound would be infinite)");
  CHECK(expect_close_throws({kInf}, {5.0}), "infinite got");
  CHECK(expect_close_throws({kInf}, {kInf}), "Inf on both sides");
  CHECK(expect_close_throws({-kInf}, {kInf}), "opposite infinities");
  CHECK(within_tolerance(1.0, 1.0005, 1e-3, 0) && !within_tolerance(kNaN, 1.0, 1e9, 1e9) &&
        !within_tolerance(1.0, kInf, 0, 1));
}

TEST(max_keeping_nan_propagates_nan_in_either_position) {
  CHECK(max_keeping_nan(1.0, 2.0) == 2.0 && max_keeping_nan(3.0, 2.0) == 3.0);
  CHECK(std::isnan(max_keeping_nan(1.0, kNaN)), "std::max(1, NaN) would return 1");
  CHECK(std::isnan(max_keeping_nan(kNaN, 1.0)));
}

TEST(gradient_check_fails_on_a_nan_gradient) {
  std::vector<double> x = {0.5, -1.0};
  auto f = [&] { return x[0] * x[0] + 3 * x[1]; };
  check_gradient("square plus linear", f, x, {1.0, 3.0});  // the correct gradient passes
  bool threw = false;
  try {
    check_gradient("square plus linear", f, x, {1.0, kNaN});
  } catch (const Failure&) {
    threw = true;
  }
  CHECK(threw, "a NaN analytic gradient must fail the finite-difference check");
}
