#pragma once
// The machine a benchmark ran on, for its report: CPU model and thread counts.
#include <fstream>
#include <string>
#include <thread>
#include "parallel.h"

inline std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown cpu";
}

// The 1-minute load average: on a shared machine above its core count, timings are not the machine's own.
inline double load_average() {
  std::ifstream f("/proc/loadavg");
  double load = -1;
  f >> load;
  return load;
}

// "<cpu model>, <hardware threads> hardware threads, <OpenMP threads> OpenMP threads"
inline std::string machine_description() {
  return cpu_model() + ", " + std::to_string(std::thread::hardware_concurrency()) + " hardware threads, " +
         std::to_string(rt::max_threads()) + " OpenMP threads";
}
