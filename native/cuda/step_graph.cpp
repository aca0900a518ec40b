#include "step_graph.h"

namespace rt::cuda {
namespace {

// The step graphs whose step runs on this thread (a step's ops are issued by one thread).
thread_local StepGraphs* active = nullptr;

// Variants kept per segment: the segments of a training step, a forward-only call and a shape or two.
constexpr size_t kVariants = 4;

}  // namespace

StepGraphs::~StepGraphs() {
  abandon_step();
  for (auto& variants : execs_)
    for (const Exec& e : variants) cudaGraphExecDestroy(e.exec);
}

void StepGraphs::begin_step() {
  if (!enabled_) return;
  abandon_step();  // a step that never reached its end leaves nothing behind
  in_step_ = true;
  steps_++;
  segment_ = 0;
  paused_ = 0;
  active = this;
  start();
}

void StepGraphs::end_step() {
  if (!in_step_) return;
  in_step_ = false;
  if (active == this) active = nullptr;
  finish(true);
}

void StepGraphs::abandon_step() {
  in_step_ = false;
  paused_ = 0;
  if (active == this) active = nullptr;
  if (capturing_) finish(false);
}

void StepGraphs::pause() {
  if (!in_step_) return;
  if (paused_++ == 0) finish(true);
}

void StepGraphs::resume() {
  if (!in_step_ || paused_ == 0) return;
  if (--paused_ == 0) start();
}

// The first step of a job runs as issued: it allocates the step's buffers and sees each shape first.
void StepGraphs::start() {
  if (!enabled_ || !in_step_ || capturing_ || paused_ > 0 || steps_ < 2) return;
  // Thread-local: a call on this thread that would synchronise or allocate fails instead of being issued;
  // the gradient staging's own thread keeps polling its events meanwhile.
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

void StepGraphs::finish(bool launch) {
  if (!capturing_) return;
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  if (!launch) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();  // a dropped capture's own error is not the step's
    return;
  }
  CUDA_CHECK(ended);
  launch_segment(graph);
  segment_++;
}

void StepGraphs::launch_segment(cudaGraph_t graph) {
  struct DestroyGraph {
    cudaGraph_t g;
    ~DestroyGraph() { cudaGraphDestroy(g); }
  } destroy{graph};
  size_t nodes = 0;
  CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
  if (nodes == 0) return;  // nothing was issued between two pauses
  if (execs_.size() <= segment_) execs_.resize(segment_ + 1);
  std::vector<Exec>& variants = execs_[segment_];
  cudaGraphExec_t exec = nullptr;
  for (Exec& e : variants) {
    if (e.nodes != nodes) continue;
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(e.exec, graph, &info) == cudaSuccess) {
      exec = e.exec;
      stats_.updated++;
    } else {
      cudaGetLastError();  // other kernels: a graph of its own, below
    }
    break;
  }
  if (!exec) {
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    stats_.instantiated++;
    if (variants.size() == kVariants) {
      cudaGraphExecDestroy(variants.front().exec);
      variants.erase(variants.begin());
    }
    for (auto it = variants.begin(); it != variants.end(); ++it)
      if (it->nodes == nodes) {  // the same count with other kernels: replaced
        cudaGraphExecDestroy(it->exec);
        variants.erase(it);
        break;
      }
    variants.push_back({exec, nodes});
  }
  CUDA_CHECK(cudaGraphLaunch(exec, stream_));
  stats_.launched++;
}

StepGraphs::Pause::Pause() : graphs_(active) {
  if (graphs_) graphs_->pause();
}

StepGraphs::Pause::~Pause() {
  if (!graphs_) return;
  try {
    graphs_->resume();
  } catch (...) {  // a capture that cannot restart leaves the rest of the step to run as issued
  }
}

}  // namespace rt::cuda
