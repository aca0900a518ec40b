// The registry of TEST cases and the loop that runs them, shared by the CPU and CUDA test drivers.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include "test_util.h"

namespace rt::test {

std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}

static std::vector<std::string> notes;
void note(const std::string& line) { notes.push_back(line); }

int run_registered_tests(const char* filter, const std::function<void()>& after_failure) {
  int failed = 0, ran = 0;
  for (const Case& c : registry()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    ran++;
    notes.clear();
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
      c.fn();
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %s (%.0f ms)\n", error.empty() ? "ok  " : "FAIL", c.name, ms);
    for (const std::string& n : notes) std::printf("       %s\n", n.c_str());
    if (!error.empty()) {
      std::printf("       %s\n", error.c_str());
      failed++;
      if (after_failure) after_failure();
    }
  }
  std::printf("\n%d tests, %d failed\n", ran, failed);
  return failed == 0 && ran > 0 ? 0 : 1;
}

}  // namespace rt::test
