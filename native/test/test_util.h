#pragma once
// A small test harness for the native driver: TEST(name) registers a case; CHECK throws with the location.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include "random.h"

namespace rt::test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
std::vector<Case>& registry();
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

#define RT_CAT2(a, b) a##b
#define RT_CAT(a, b) RT_CAT2(a, b)
#define TEST(name)                                                            \
  static void RT_CAT(test_, name)();                                          \
  static ::rt::test::Register RT_CAT(reg_, name)(#name, RT_CAT(test_, name)); \
  static void RT_CAT(test_, name)()

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define CHECK(cond, ...)                                                                               \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::ostringstream rt_s_;                                                                        \
      rt_s_ << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed " __VA_OPT__(<< __VA_ARGS__); \
      throw ::rt::test::Failure(rt_s_.str());                                                          \
    }                                                                                                  \
  } while (0)

// Deterministic pseudo-random fill in [-scale, scale].
template <typename T>
void fill_uniform(std::vector<T>& v, uint64_t seed, double scale = 1.0) {
  for (size_t i = 0; i < v.size(); i++) v[i] = (T)((2 * uniform01(seed, 77, i) - 1) * scale);
}

// True when got lies within abs_tol + rel_tol * |want| of want and both are finite. A NaN or Inf on either
// side fails: a NaN difference compares false, and an infinite want would make the bound infinite.
inline bool within_tolerance(double got, double want, double abs_tol, double rel_tol) {
  if (!std::isfinite(got) || !std::isfinite(want)) return false;
  return std::fabs(got - want) <= abs_tol + rel_tol * std::fabs(want);
}

// The larger of a and b, NaN when either is NaN: std::max(m, NaN) returns m and would hide the NaN.
inline double max_keeping_nan(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

// Compares got with want elementwise with within_tolerance; returns the max abs diff and throws naming the
// first offending index (a NaN or Inf on either side is an offence).
template <typename A, typename B>
double expect_close(const std::string& what, const A* got, const B* want, size_t n, double abs_tol, double rel_tol) {
  double maxdiff = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = std::fabs((double)got[i] - (double)want[i]);
    if (!within_tolerance((double)got[i], (double)want[i], abs_tol, rel_tol)) {
      std::ostringstream s;
      s << what << "[" << i << "]: got " << (double)got[i] << ", want " << (double)want[i] << " (diff " << d
        << ", tolerance " << abs_tol << " + " << rel_tol << " * |want|)";
      throw Failure(s.str());
    }
    maxdiff = std::max(maxdiff, d);
  }
  return maxdiff;
}

// Central finite differences of f with respect to x[i], in double.
inline double finite_difference(const std::function<double()>& f, double& xi, double h = 1e-6) {
  const double saved = xi;
  xi = saved + h;
  const double plus = f();
  xi = saved - h;
  const double minus = f();
  xi = saved;
  return (plus - minus) / (2 * h);
}

// Checks an analytic gradient against finite differences for every element of x.
inline double check_gradient(const std::string& what, const std::function<double()>& f, std::vector<double>& x,
                             const std::vector<double>& analytic, double abs_tol = 1e-7, double rel_tol = 1e-5) {
  std::vector<double> fd(x.size());
  for (size_t i = 0; i < x.size(); i++) fd[i] = finite_difference(f, x[i]);
  return expect_close(what + " gradient", analytic.data(), fd.data(), x.size(), abs_tol, rel_tol);
}

void note(const std::string& line);  // printed under the test's name

// Runs every registered case whose name contains filter (all when null); after_failure runs after each
// failing case (the CUDA driver clears the device's sticky error there). 0 when all ran cases passed.
int run_registered_tests(const char* filter, const std::function<void()>& after_failure = {});

}  // namespace rt::test
