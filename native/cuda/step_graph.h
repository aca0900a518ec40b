#pragma once
// A training step's device work replayed as CUDA graphs. From the second step on, the backend's stream is
// captured while the model issues the step (every kernel, memset and stream-ordered copy goes into a graph
// instead of to the device), and each segment of it is launched as one graph: one launch for hundreds of
// kernels, without the GPU's gap between them. A segment ends where the host must see the device's work so far:
// a gradient bucket handed to its copy stream or collective, an allocation (a new shape: the capture pauses
// around it), a read back, the host-driven sequence-parallel ring, and the end of the step. The step's
// executable graphs are instantiated once and then updated in place from each step's capture
// (cudaGraphExecUpdate: same kernels in the same order, new arguments), so a step whose batch, pointers or
// scalars changed still replays exactly what the model issued; a segment whose kernels changed (another
// shape, a forward-only call) gets a graph of its own.
#include <cstdint>
#include <vector>
#include "common.cuh"

namespace rt::cuda {

class StepGraphs {
 public:
  struct Stats {
    uint64_t launched = 0;      // graphs launched (segments)
    uint64_t instantiated = 0;  // executable graphs built
    uint64_t updated = 0;       // executable graphs updated in place from a new capture
  };

  StepGraphs(cudaStream_t stream, bool enabled) : stream_(stream), enabled_(enabled) {}
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  bool enabled() const { return enabled_; }
  // The step's device work starts: from the second step on, the stream is captured until end_step().
  void begin_step();
  // The step's work is all issued: its last segment is launched (the caller then reads the results).
  void end_step();
  // The step was cancelled or failed before end_step(): a capture under way is dropped, never launched.
  void abandon_step();
  Stats stats() const { return stats_; }
  // Pauses the step's capture until the matching resume() (nested pairs count): the segment captured so far is
  // launched first, so what the host does meanwhile (a bucket handed over) is ordered after it.
  void pause();
  void resume();

  // pause()/resume() of the calling thread's step graphs, if a step is under way on it, for the scope. Placed
  // around every allocation, read back or host-driven exchange a step may make (each would fail inside a
  // capture, as on a GPU), including those of code that does not see the backend.
  class Pause {
   public:
    Pause();
    ~Pause();
    Pause(const Pause&) = delete;
    Pause& operator=(const Pause&) = delete;

   private:
    StepGraphs* graphs_;
  };

 private:
  struct Exec {
    cudaGraphExec_t exec;
    size_t nodes;
  };
  void start();
  void finish(bool launch);
  void launch_segment(cudaGraph_t graph);

  cudaStream_t stream_;
  bool enabled_;
  bool in_step_ = false, capturing_ = false;
  int paused_ = 0;
  uint64_t steps_ = 0;
  size_t segment_ = 0;                    // the segment of the step being captured
  std::vector<std::vector<Exec>> execs_;  // per segment of a step: a few variants (shapes, step kinds)
  Stats stats_;
};

}  // namespace rt::cuda
