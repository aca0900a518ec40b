// Stream capture and graphs of the CUDA emulator. A capturing stream keeps what is issued to it (kernel launches,
// asynchronous copies and memsets, event records and waits) as nodes in issue order instead of running them;
// cudaStreamEndCapture turns them into a graph, cudaGraphInstantiate into an executable graph, and
// cudaGraphLaunch runs the nodes in order on a stream (every call completes before it returns, so a chain in
// issue order keeps every dependency the capture saw). As on a GPU, a capture forbids the calls that wait for
// the device or allocate: made from the capturing thread (or from any thread, for a global-mode capture) they
// fail naming the call and invalidate the capture, whose cudaStreamEndCapture then fails naming it too.
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include "emu_internal.h"

struct CUgraph_st {
  int device;
  std::vector<ringtune_emu::GraphNode> nodes;
};
struct CUgraphExec_st {
  int device;
  std::vector<ringtune_emu::GraphNode> nodes;
};

namespace ringtune_emu {
namespace {

struct Capture {
  uint64_t id;
  cudaStreamCaptureMode mode;
  std::thread::id owner;
  int device;
  std::vector<GraphNode> nodes;
  std::string invalidated;  // the first forbidden call, when one was made
};

struct Graphs {
  std::mutex mu;
  std::map<cudaStream_t, Capture> captures;  // the active ones, by stream
  std::set<const CUgraph_st*> graphs;
  std::set<const CUgraphExec_st*> execs;
  uint64_t next_id = 0;
};
Graphs& graphs() {
  static Graphs* g = new Graphs;
  return *g;
}

std::atomic<unsigned long long> graph_launches{0}, graph_kernels{0}, captured_kernels{0};

std::string stream_text(cudaStream_t s) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", (const void*)s);
  return std::string("stream ") + b;
}

const char* kind_text(NodeKind k) {
  switch (k) {
    case NodeKind::Kernel: return "kernel";
    case NodeKind::Memcpy: return "memcpy";
    case NodeKind::Memset: return "memset";
    case NodeKind::EventRecord: return "event record";
    case NodeKind::EventWait: return "event wait";
  }
  return "node";
}

}  // namespace

bool capture_node(cudaStream_t s, GraphNode&& node) {
  if (!s) return false;
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = g.captures.find(s);
  if (it == g.captures.end()) return false;
  if (node.kind == NodeKind::Kernel) captured_kernels.fetch_add(1);
  if (it->second.invalidated.empty()) it->second.nodes.push_back(std::move(node));
  return true;
}

uint64_t capture_id(cudaStream_t s) {
  if (!s) return 0;
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = g.captures.find(s);
  return it == g.captures.end() ? 0 : it->second.id;
}

bool capture_live(uint64_t id) {
  if (!id) return false;
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  for (const auto& [s, c] : g.captures)
    if (c.id == id) return true;
  return false;
}

void invalidate_capture(cudaStream_t s, const std::string& why) {
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = g.captures.find(s);
  if (it != g.captures.end() && it->second.invalidated.empty()) it->second.invalidated = why;
}

cudaError_t refuse_during_capture(const char* call) {
  Graphs& g = graphs();
  std::string streams;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    const std::thread::id me = std::this_thread::get_id();
    for (auto& [s, c] : g.captures) {
      const bool forbids =
          c.mode == cudaStreamCaptureModeGlobal || (c.mode == cudaStreamCaptureModeThreadLocal && c.owner == me);
      if (!forbids) continue;
      if (c.invalidated.empty()) c.invalidated = std::string(call) + " was called during the capture";
      streams += (streams.empty() ? "" : ", ") + stream_text(s);
    }
  }
  if (streams.empty()) return cudaSuccess;
  return set_error(cudaErrorStreamCaptureUnsupported,
                   std::string(call) + " while " + streams +
                       " is capturing: a call that waits for the device or allocates cannot be part of a graph");
}

unsigned long long count_graph_launches() { return graph_launches.load(); }
unsigned long long count_graph_kernels() { return graph_kernels.load(); }
unsigned long long count_captured_kernels() { return captured_kernels.load(); }

}  // namespace ringtune_emu

using namespace ringtune_emu;

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (!s)
    return set_error(cudaErrorStreamCaptureUnsupported,
                     "cudaStreamBeginCapture: the legacy default stream cannot be captured (use a stream of its own)");
  const int dev = stream_device(s);
  if (dev < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamBeginCapture: unknown stream");
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return set_error(cudaErrorInvalidValue, "cudaStreamBeginCapture: unknown capture mode");
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.captures.count(s))
    return set_error(cudaErrorIllegalState, "cudaStreamBeginCapture: " + stream_text(s) + " is capturing already");
  g.captures[s] = Capture{++g.next_id, mode, std::this_thread::get_id(), dev, {}, {}};
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  if (!graph) return set_error(cudaErrorInvalidValue, "cudaStreamEndCapture: null output pointer");
  *graph = nullptr;
  Graphs& g = graphs();
  std::unique_lock<std::mutex> lock(g.mu);
  auto it = g.captures.find(s);
  if (it == g.captures.end())
    return set_error(cudaErrorIllegalState, "cudaStreamEndCapture: " + stream_text(s) + " is not capturing");
  if (it->second.mode != cudaStreamCaptureModeRelaxed && it->second.owner != std::this_thread::get_id())
    return set_error(cudaErrorStreamCaptureWrongThread,
                     "cudaStreamEndCapture: the capture of " + stream_text(s) + " began on another thread");
  Capture c = std::move(it->second);
  g.captures.erase(it);
  if (!c.invalidated.empty()) {
    lock.unlock();
    return set_error(cudaErrorStreamCaptureInvalidated,
                     "cudaStreamEndCapture: the capture of " + stream_text(s) + " was invalidated: " + c.invalidated);
  }
  auto* made = new CUgraph_st{c.device, std::move(c.nodes)};
  g.graphs.insert(made);
  *graph = made;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  if (!status) return set_error(cudaErrorInvalidValue, "cudaStreamIsCapturing: null output pointer");
  if (stream_device(s) < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamIsCapturing: unknown stream");
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = s ? g.captures.find(s) : g.captures.end();
  *status = it == g.captures.end()           ? cudaStreamCaptureStatusNone
            : it->second.invalidated.empty() ? cudaStreamCaptureStatusActive
                                             : cudaStreamCaptureStatusInvalidated;
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (!count) return set_error(cudaErrorInvalidValue, "cudaGraphGetNodes: null count");
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.graphs.count(graph)) return set_error(cudaErrorInvalidResourceHandle, "cudaGraphGetNodes: unknown graph");
  if (nodes)  // handles that stand for the node's position (the emulator keeps no node objects)
    for (size_t i = 0; i < *count && i < graph->nodes.size(); i++) nodes[i] = (cudaGraphNode_t)(uintptr_t)(i + 1);
  *count = graph->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!graph || !g.graphs.erase(graph))
    return set_error(cudaErrorInvalidResourceHandle, "cudaGraphDestroy: unknown graph");
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec) return set_error(cudaErrorInvalidValue, "cudaGraphInstantiate: null output pointer");
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.graphs.count(graph)) return set_error(cudaErrorInvalidResourceHandle, "cudaGraphInstantiate: unknown graph");
  auto* made = new CUgraphExec_st{graph->device, graph->nodes};
  g.execs.insert(made);
  *exec = made;
  return cudaSuccess;
}

cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo* info) {
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.execs.count(exec) || !g.graphs.count(graph))
    return set_error(cudaErrorInvalidResourceHandle, "cudaGraphExecUpdate: unknown graph or executable graph");
  auto refuse = [&](cudaGraphExecUpdateResult r, size_t at, const std::string& why) {
    if (info) *info = {r, at ? (cudaGraphNode_t)(uintptr_t)at : nullptr, nullptr};
    return set_error(cudaErrorGraphExecUpdateFailure, "cudaGraphExecUpdate: " + why);
  };
  if (exec->device != graph->device) return refuse(cudaGraphExecUpdateError, 0, "the graphs' devices differ");
  if (exec->nodes.size() != graph->nodes.size())
    return refuse(cudaGraphExecUpdateErrorTopologyChanged, 0,
                  std::to_string(graph->nodes.size()) + " nodes where the executable graph has " +
                      std::to_string(exec->nodes.size()));
  for (size_t i = 0; i < exec->nodes.size(); i++) {
    const GraphNode &was = exec->nodes[i], &now = graph->nodes[i];
    if (was.kind != now.kind)
      return refuse(cudaGraphExecUpdateErrorNodeTypeChanged, i + 1,
                    "node " + std::to_string(i) + " was a " + kind_text(was.kind) + ", now a " + kind_text(now.kind));
    if (was.kernel != now.kernel)
      return refuse(cudaGraphExecUpdateErrorFunctionChanged, i + 1,
                    "node " + std::to_string(i) + " launches " + now.what + " where it launched " + was.what);
  }
  exec->nodes = graph->nodes;
  if (info) *info = {cudaGraphExecUpdateSuccess, nullptr, nullptr};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  std::vector<GraphNode> nodes;
  {
    Graphs& g = graphs();
    std::lock_guard<std::mutex> lock(g.mu);
    if (!g.execs.count(exec))
      return set_error(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: unknown executable graph");
    if (s && g.captures.count(s))
      return set_error(cudaErrorStreamCaptureUnsupported,
                       "cudaGraphLaunch into a capturing stream (a child graph) is not emulated");
    nodes = exec->nodes;
  }
  const int dev = stream_device(s);
  if (dev < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: unknown stream");
  if (dev != exec->device)
    return set_error(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: a graph of device " +
                                                         std::to_string(exec->device) + " into a stream of device " +
                                                         std::to_string(dev));
  graph_launches.fetch_add(1);
  const cudaError_t before = cudaGetLastError();  // a node's error is told apart from an earlier one
  for (size_t i = 0; i < nodes.size(); i++) {
    if (nodes[i].kind == NodeKind::Kernel) graph_kernels.fetch_add(1);
    const cudaError_t e = nodes[i].run(s);
    if (e != cudaSuccess)
      return set_error(
          e, "cudaGraphLaunch: node " + std::to_string(i) + " (" + nodes[i].what + "): " + cudaGetErrorString(e));
  }
  restore_last_error(before);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  Graphs& g = graphs();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!exec || !g.execs.erase(exec))
    return set_error(cudaErrorInvalidResourceHandle, "cudaGraphExecDestroy: unknown executable graph");
  delete exec;
  return cudaSuccess;
}
