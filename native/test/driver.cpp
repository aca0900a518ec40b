// The native test driver: runs without Node.js (a GPU host may have none). Benchmarks live in
// ringtune_native_bench (bench/native/).
//   ringtune_native_test [FILTER]   run the op and model tests (FILTER: substring of a test name)
#include "test_util.h"

int main(int argc, char** argv) { return rt::test::run_registered_tests(argc > 1 ? argv[1] : nullptr); }
