// Finding and opening libnccl.so.2 (see nccl_library.h).
#include "nccl_library.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <mutex>
#include <sstream>

namespace rt::nccl {
namespace {

constexpr const char* kSoname = "libnccl.so.2";
constexpr const char* kWheelDir = "nvidia/nccl/lib/";

void add_glob(const std::string& pattern, std::vector<std::string>& out) {
  glob_t g{};
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; i++) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
}

template <typename F>
bool sym(void* lib, const char* name, F& out, std::string* missing) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (!out && missing->empty()) *missing = name;
  return out != nullptr;
}

// Fills every entry point from an opened library; false names the first one missing.
bool bind(void* lib, Library& l, std::string* missing) {
  bool ok = sym(lib, "ncclGetVersion", l.get_version, missing);
  ok = sym(lib, "ncclGetUniqueId", l.get_unique_id, missing) && ok;
  ok = sym(lib, "ncclCommInitRankConfig", l.comm_init_rank_config, missing) && ok;
  ok = sym(lib, "ncclCommGetAsyncError", l.comm_get_async_error, missing) && ok;
  ok = sym(lib, "ncclCommAbort", l.comm_abort, missing) && ok;
  ok = sym(lib, "ncclCommDestroy", l.comm_destroy, missing) && ok;
  ok = sym(lib, "ncclGetErrorString", l.get_error_string, missing) && ok;
  ok = sym(lib, "ncclAllReduce", l.all_reduce, missing) && ok;
  ok = sym(lib, "ncclReduceScatter", l.reduce_scatter, missing) && ok;
  ok = sym(lib, "ncclAllGather", l.all_gather, missing) && ok;
  ok = sym(lib, "ncclReduce", l.reduce, missing) && ok;
  ok = sym(lib, "ncclBroadcast", l.broadcast, missing) && ok;
  ok = sym(lib, "ncclSend", l.send, missing) && ok;
  ok = sym(lib, "ncclRecv", l.recv, missing) && ok;
  ok = sym(lib, "ncclGroupStart", l.group_start, missing) && ok;
  ok = sym(lib, "ncclGroupEnd", l.group_end, missing) && ok;
  l.get_last_error = reinterpret_cast<GetLastErrorFn>(dlsym(lib, "ncclGetLastError"));
  l.standin_attach = reinterpret_cast<StandinAttachFn>(dlsym(lib, kStandinAttachSymbol));
  return ok;
}

}  // namespace

std::vector<std::string> candidate_paths() {
  std::vector<std::string> out;
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv && *venv)
    add_glob(std::string(venv) + "/lib/python3*/site-packages/" + kWheelDir + kSoname, out);
  if (const char* pp = std::getenv("PYTHONPATH"); pp && *pp) {
    std::stringstream dirs(pp);
    for (std::string d; std::getline(dirs, d, ':');)
      if (!d.empty()) add_glob(d + "/" + kWheelDir + kSoname, out);
  }
  if (const char* home = std::getenv("HOME"); home && *home)
    add_glob(std::string(home) + "/.local/lib/python3*/site-packages/" + kWheelDir + kSoname, out);
  for (const char* root : {"/usr/local/lib/python3*/dist-packages/", "/usr/local/lib/python3*/site-packages/",
                           "/usr/lib/python3/dist-packages/", "/usr/lib/python3*/site-packages/"})
    add_glob(std::string(root) + kWheelDir + kSoname, out);
  return out;
}

std::string Library::describe(const char* call, Result r, Comm comm) const {
  std::string msg = std::string(call) + ": " + get_error_string(r) + " (NCCL result " + std::to_string((int)r) + ")";
  if (get_last_error && comm) {
    const char* last = get_last_error(comm);
    if (last && *last) msg += ": " + std::string(last);
  }
  return msg;
}

const Library* load_library(std::string* why) {
  static std::mutex mu;
  static Library lib;
  static bool tried = false, loaded = false;
  static std::string failure;
  std::lock_guard<std::mutex> g(mu);
  if (!tried) {
    tried = true;
    std::vector<std::string> paths;
    const char* forced = std::getenv("RINGTUNE_NCCL_LIB");
    if (forced && *forced) {
      paths.emplace_back(forced);
    } else {
      paths = candidate_paths();
      paths.emplace_back(kSoname);
    }
    std::ostringstream tried_paths;
    for (const auto& p : paths) {
      void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!h) {
        tried_paths << p << ": " << dlerror() << "; ";
        continue;
      }
      std::string missing;
      if (!bind(h, lib, &missing)) {
        tried_paths << p << ": lacks " << missing << "; ";
        dlclose(h);
        continue;
      }
      lib.path = p;
      if (lib.get_version(&lib.version) != kSuccess) lib.version = 0;
      loaded = true;
      break;
    }
    if (!loaded)
      failure = std::string("libnccl.so.2 not found") + (forced && *forced ? " at RINGTUNE_NCCL_LIB" : "") + " (" +
                tried_paths.str() + ")";
  }
  if (!loaded && why) *why = failure;
  return loaded ? &lib : nullptr;
}

}  // namespace rt::nccl
