// The coordinator's Prometheus metrics: each job's steps, tokens, losses, learning rate, grad norm and
// throughput from the same metric lines metrics.jsonl gets; step and all-reduce wait times; and, read when
// scraped, how many jobs are in each status, how many workers in each state, and how many workers the
// unfinished jobs want (what an autoscaler sizes the worker pool by).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { FINAL_STATUSES, JOB_STATUSES, type WorkerInfo } from "../../proto/mod.js";
import type { Job } from "../jobs/store.js";
import type { MetricLine } from "../train/metrics_file.js";
import { PREF_KEYS } from "../train/pref_metrics.js";

const SECONDS_BUCKETS = [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180];
const WORKER_STATES = ["idle", "busy", "lost"] as const;

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/**
 * The workers a job's spec asks for: `workers: N`, or the most of `workers: {min, max}` (an elastic job takes
 * what idle workers appear, up to its max). A spec without a readable count wants one, the spec's default.
 */
export function workersWanted(spec: Record<string, unknown>): number {
  const w = spec.workers;
  const n = num(w) ?? (w && typeof w === "object" ? num((w as Record<string, unknown>).max) : undefined);
  return n !== undefined && n >= 1 ? Math.floor(n) : 1;
}

export interface ClusterView {
  jobs(): readonly Job[];
  workers(): readonly WorkerInfo[];
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly steps: Counter<"job">;
  private readonly tokens: Counter<"job">;
  private readonly trainLoss: Gauge<"job">;
  private readonly valLoss: Gauge<"job">;
  private readonly valLossByTask: Gauge<"job" | "task">;
  private readonly lr: Gauge<"job">;
  private readonly gradNorm: Gauge<"job">;
  private readonly tokensPerS: Gauge<"job">;
  private readonly stepSeconds: Histogram;
  private readonly allReduceWait: Histogram;
  private readonly workerStepSeconds: Gauge<"worker">;
  private readonly preference: Gauge<"job" | "task" | "metric">;

  constructor(view: ClusterView) {
    collectDefaultMetrics({ register: this.registry, prefix: "ringtune_coordinator_process_" });
    const registers = [this.registry];
    const perJob = (name: string, help: string) => new Gauge({ name, help, labelNames: ["job"] as const, registers });
    this.steps = new Counter({
      name: "ringtune_steps_total",
      help: "training steps completed",
      labelNames: ["job"],
      registers,
    });
    this.tokens = new Counter({
      name: "ringtune_tokens_total",
      help: "tokens (pads excluded) trained on",
      labelNames: ["job"],
      registers,
    });
    this.trainLoss = perJob("ringtune_train_loss", "train loss of the last step (mean over its targets)");
    this.valLoss = perJob("ringtune_val_loss", "validation loss of the last evaluation");
    this.valLossByTask = new Gauge({
      name: "ringtune_val_loss_by_task",
      help: "validation loss of the last evaluation per task_type",
      labelNames: ["job", "task"],
      registers,
    });
    this.lr = perJob("ringtune_learning_rate", "learning rate of the last step");
    this.gradNorm = perJob("ringtune_grad_norm", "global gradient norm of the last step (before clipping)");
    this.tokensPerS = perJob("ringtune_tokens_per_second", "tokens per second since the job's start");
    this.stepSeconds = new Histogram({
      name: "ringtune_step_seconds",
      help: "wall time of a training step, as the coordinator sees it",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.allReduceWait = new Histogram({
      name: "ringtune_allreduce_wait_seconds",
      help: "the slowest rank's wait for the gradient all-reduce after its backward, per step",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.workerStepSeconds = new Gauge({
      name: "ringtune_worker_last_step_seconds",
      help: "forward and backward time of each worker's last step",
      labelNames: ["worker"],
      registers,
    });
    this.preference = new Gauge({
      name: "ringtune_preference",
      help:
        "preference training, last step: rewards_chosen, rewards_rejected, margin, accuracy, logps_chosen, " +
        "logps_rejected (means over the step's pairs; task 'all' or a task_type)",
      labelNames: ["job", "task", "metric"],
      registers,
    });
    clusterGauges(view, registers);
  }

  private observePreference(job: string, task: string, m: Record<string, unknown>): void {
    for (const metric of PREF_KEYS) {
      const v = num(m[metric]);
      if (v !== undefined) this.preference.set({ job, task, metric }, v);
    }
  }

  /** One line of a job's metrics.jsonl: a step's numbers or an evaluation's. */
  observe(job: string, line: MetricLine): void {
    const loss = num(line.loss);
    if (loss !== undefined) {
      this.steps.inc({ job });
      this.trainLoss.set({ job }, loss);
      this.tokens.inc({ job }, num(line.tokens) ?? 0);
      for (const [gauge, key] of [
        [this.lr, "lr"],
        [this.gradNorm, "grad_norm"],
        [this.tokensPerS, "tokens_per_s"],
      ] as const) {
        const v = num(line[key]);
        if (v !== undefined) gauge.set({ job }, v);
      }
      const stepMs = num(line.step_ms);
      if (stepMs !== undefined) this.stepSeconds.observe(stepMs / 1000);
      const waitMs = num(line.comm_wait_ms);
      if (waitMs !== undefined) this.allReduceWait.observe(waitMs / 1000);
      const perWorker = line.worker_compute_ms;
      if (perWorker && typeof perWorker === "object")
        for (const [worker, ms] of Object.entries(perWorker)) {
          const v = num(ms);
          if (v !== undefined) this.workerStepSeconds.set({ worker }, v / 1000);
        }
      this.observePreference(job, "all", line);
      const prefByTask = line.pref_by_task;
      if (prefByTask && typeof prefByTask === "object")
        for (const [task, m] of Object.entries(prefByTask))
          if (m && typeof m === "object") this.observePreference(job, task, m as Record<string, unknown>);
    }
    const val = num(line.val_loss);
    if (val !== undefined) this.valLoss.set({ job }, val);
    const byTask = line.val_loss_by_task;
    if (byTask && typeof byTask === "object")
      for (const [task, v] of Object.entries(byTask)) {
        const value = num(v);
        if (value !== undefined) this.valLossByTask.set({ job, task }, value);
      }
  }
}

/** Gauges read from the cluster's state when scraped: jobs by status, workers by state, heartbeats, demand. */
function clusterGauges(view: ClusterView, registers: Registry[]): void {
  new Gauge({
    name: "ringtune_jobs",
    help: "jobs in each status",
    labelNames: ["status"],
    registers,
    collect() {
      const jobs = view.jobs();
      for (const status of JOB_STATUSES) this.set({ status }, jobs.filter((j) => j.status === status).length);
    },
  });
  new Gauge({
    name: "ringtune_workers",
    help: "registered workers in each state",
    labelNames: ["state"],
    registers,
    collect() {
      const workers = view.workers();
      for (const state of WORKER_STATES) this.set({ state }, workers.filter((w) => w.state === state).length);
    },
  });
  new Gauge({
    name: "ringtune_workers_wanted",
    help: "workers the queued, waiting, preparing and running jobs ask for together (an elastic job counts its max)",
    registers,
    collect() {
      const open = view.jobs().filter((j) => !FINAL_STATUSES.includes(j.status));
      this.set(open.reduce((sum, j) => sum + workersWanted(j.spec), 0));
    },
  });
  new Gauge({
    name: "ringtune_worker_heartbeat_age_seconds",
    help: "time since each worker's last heartbeat",
    labelNames: ["worker"],
    registers,
    collect() {
      this.reset();
      for (const w of view.workers()) this.set({ worker: w.worker_id }, w.last_seen_ms_ago / 1000);
    },
  });
}
