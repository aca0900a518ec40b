// A worker's Prometheus metrics: what its training steps did (steps, tokens, loss, time, all-reduce wait
// and bytes) and whether it is busy. Each process has its own registry, so a test may run several
// workers in one process without their numbers mixing.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** step and all-reduce times on CPU run from milliseconds (tiny models) to minutes (real ones) */
const SECONDS_BUCKETS = [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180];

export interface WorkerStepNumbers {
  job: string;
  lossSum: number;
  targets: number;
  tokens: number;
  computeMs: number;
  commWaitMs: number;
  allReduceBytes: number;
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly steps: Counter<"job">;
  private readonly tokens: Counter<"job">;
  private readonly loss: Gauge<"job">;
  private readonly stepSeconds: Histogram;
  private readonly allReduceSeconds: Histogram;
  private readonly allReduceBytes: Counter;
  private readonly busy: Gauge<"state">;

  constructor(workerId: string, state: () => "idle" | "busy") {
    this.registry.setDefaultLabels({ worker: workerId });
    collectDefaultMetrics({ register: this.registry, prefix: "ringtune_worker_process_" });
    const registers = [this.registry];
    this.steps = new Counter({
      name: "ringtune_worker_steps_total",
      help: "training steps this worker ran",
      labelNames: ["job"],
      registers,
    });
    this.tokens = new Counter({
      name: "ringtune_worker_tokens_total",
      help: "tokens (pads excluded) of the rows this worker trained on",
      labelNames: ["job"],
      registers,
    });
    this.loss = new Gauge({
      name: "ringtune_worker_loss",
      help: "mean loss over this worker's share of the last step",
      labelNames: ["job"],
      registers,
    });
    this.stepSeconds = new Histogram({
      name: "ringtune_worker_step_seconds",
      help: "forward and backward time of one step on this worker",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.allReduceSeconds = new Histogram({
      name: "ringtune_worker_allreduce_wait_seconds",
      help: "time after the last backward spent waiting for the gradient all-reduce",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.allReduceBytes = new Counter({
      name: "ringtune_worker_allreduce_bytes_total",
      help: "gradient bytes this worker sent to its ring neighbour",
      registers,
    });
    this.busy = new Gauge({
      name: "ringtune_worker_state",
      help: "1 for the state this worker is in (idle or busy with a job)",
      labelNames: ["state"],
      registers,
      collect() {
        const now = state();
        for (const s of ["idle", "busy"] as const) this.set({ state: s }, s === now ? 1 : 0);
      },
    });
  }

  observeStep(n: WorkerStepNumbers): void {
    this.steps.inc({ job: n.job });
    this.tokens.inc({ job: n.job }, n.tokens);
    if (n.targets > 0) this.loss.set({ job: n.job }, n.lossSum / n.targets);
    this.stepSeconds.observe(n.computeMs / 1000);
    this.allReduceSeconds.observe(n.commWaitMs / 1000);
    this.allReduceBytes.inc(n.allReduceBytes);
  }
}
