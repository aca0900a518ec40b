#pragma once
// OpenMP queries, with serial fallbacks so the code also builds without OpenMP.
#ifdef _OPENMP
#include <omp.h>
#endif

namespace rt {
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_count() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
}  // namespace rt
