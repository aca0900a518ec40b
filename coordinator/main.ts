// The coordinator process: takes jobs by NATS request, keeps them in JetStream KV, schedules them on idle
// workers, and runs each job's step loop. A restarted coordinator resumes interrupted jobs from their
// last checkpoint.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ListenAddress } from "../observe/http_listen.js";
import { processLogger } from "../observe/logger.js";
import { CoordinatorHttp } from "./observe/coordinator_http.js";
import { ClusterStatusReply, encodeMessage, jobSubjects } from "../proto/mod.js";
import { serveJobApi } from "./jobs/job_api_server.js";
import { memoryRefusal, workersThatFit } from "./jobs/memory_fit.js";
import { readModelShape } from "./job_spec/job_memory.js";
import { JobStore, type Job } from "./jobs/store.js";
import { parseSpec } from "./job_spec/load.js";
import { runJob } from "./train/run_job.js";
import type { MetricLine } from "./train/metrics_file.js";
import { WorkerLostError } from "./train/worker_client.js";
import { WorkerRegistry } from "./workers/registry.js";

export interface CoordinatorOptions {
  natsUrl: string;
  log?: Logger;
  heartbeatMs?: number;
  /** a worker silent this long is lost */
  lostAfterMs?: number;
  /** where to serve the dashboard and Prometheus `/metrics` (none: no HTTP server) */
  http?: ListenAddress;
}

export class Coordinator {
  private readonly stopReasons = new Map<string, string>();
  /** per running job: rejects when one of its workers is lost */
  private readonly interruptions = new Map<string, { promise: Promise<never>; reject: (e: Error) => void }>();
  private readonly running = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private scheduling = false;
  /** the dashboard and /metrics, when started with `http` */
  http: CoordinatorHttp | undefined;

  private constructor(
    readonly nc: NatsConnection,
    private readonly store: JobStore,
    private readonly registry: WorkerRegistry,
    private readonly log: Logger,
  ) {}

  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    const log = opts.log ?? processLogger("coordinator");
    const nc = await connect({ servers: opts.natsUrl, name: "ringtune-coordinator", maxReconnectAttempts: -1 });
    const store = await JobStore.open(nc);
    const registry = new WorkerRegistry(nc, log, opts.heartbeatMs ?? 1000, opts.lostAfterMs ?? 10_000);
    const c = new Coordinator(nc, store, registry, log);
    if (opts.http) c.http = await CoordinatorHttp.start(opts.http, store, () => registry.status(), log);
    await c.recoverInterruptedJobs();
    registry.onLost = (worker, job) =>
      c.interruptions.get(job)?.reject(new WorkerLostError(`worker ${worker} stopped sending heartbeats`, worker));
    registry.start();
    c.serve();
    nc.publish(jobSubjects.coordinatorHello); // workers that were up before us register again
    c.timer = setInterval(() => void c.schedule(), 500);
    log.info({ jobs: store.all().length }, "coordinator ready");
    return c;
  }

  /** Jobs a previous coordinator was running go back to the queue, to resume from their last checkpoint. */
  private async recoverInterruptedJobs(): Promise<void> {
    for (const job of this.store.all()) {
      if (job.status !== "running" && job.status !== "preparing") continue;
      const from = job.last_checkpoint
        ? `its checkpoint at step ${job.last_checkpoint.step}`
        : "the start (no checkpoint yet)";
      await this.store.update(job.id, {
        status: "queued",
        message: `the coordinator restarted; resuming from ${from}`,
        workers: [],
      });
      this.log.info({ job: job.id }, `resuming from ${from}`);
    }
  }

  private serve(): void {
    serveJobApi(this.nc, this.store, this.log, {
      onAccepted: () => void this.schedule(),
      liveMemory: () => this.registry.liveMemory(),
      requestStop: (id, why) => {
        if (!this.running.has(id)) return false;
        this.stopReasons.set(id, why);
        return true;
      },
    });
    this.nc.subscribe(jobSubjects.clusterStatus, {
      callback: (_err, msg) => {
        msg.respond(
          encodeMessage(ClusterStatusReply, {
            workers: this.registry.status(),
            jobs_running: [...this.running.keys()],
          }),
        );
      },
    });
  }

  /**
   * Starts every queued job that enough idle workers with enough memory can take, oldest first; says why
   * others wait, and fails a job that the registered workers can never hold (they joined after intake).
   */
  private async schedule(): Promise<void> {
    if (this.scheduling) return;
    this.scheduling = true;
    try {
      for (const job of this.store.all()) {
        if ((job.status !== "queued" && job.status !== "waiting") || this.running.has(job.id)) continue;
        const spec = parseSpec(job.spec, job.source ?? job.id, job.base_dir);
        const want = spec.workers;
        const idleAny = this.registry.idle();
        let idle: string[];
        try {
          const shape = readModelShape(spec);
          const live = this.registry.liveMemory();
          const refusal = memoryRefusal(spec, shape, live);
          if (refusal) {
            await this.store.update(job.id, { status: "failed", message: refusal });
            continue;
          }
          const fit = new Set(workersThatFit(spec, shape, live).map((w) => w.id));
          idle = idleAny.filter((id) => fit.has(id));
        } catch (err) {
          await this.store.update(job.id, { status: "failed", message: (err as Error).message });
          continue;
        }
        if (idle.length < want) {
          const { registered } = this.registry.counts();
          const small = idleAny.length - idle.length;
          const message =
            `waiting for ${want} idle worker(s): ${idle.length} idle of ${registered} registered` +
            (small > 0 ? ` (${small} more idle without the memory the job needs)` : "");
          if (job.status !== "waiting" || job.message !== message)
            await this.store.update(job.id, { status: "waiting", message });
          continue;
        }
        this.start(job, idle.slice(0, want));
      }
    } catch (err) {
      this.log.error({ err }, "scheduling");
    } finally {
      this.scheduling = false;
    }
  }

  private start(job: Job, workers: string[]): void {
    this.registry.reserve(workers, job.id);
    this.stopReasons.delete(job.id);
    this.log.info({ job: job.id, workers }, "starting job");
    let reject: (e: Error) => void = () => {};
    const promise = new Promise<never>((_, r) => (reject = r));
    promise.catch(() => {}); // observed by the job's waits; unobserved when the job ends first
    this.interruptions.set(job.id, { promise, reject });
    const env = {
      nc: this.nc,
      store: this.store,
      log: this.log,
      stopReason: (id: string) => this.stopReasons.get(id),
      interruption: (id: string) => this.interruptions.get(id)!.promise,
      suspect: (worker: string) => this.registry.suspect(worker),
      activity: (worker: string) => this.registry.activity(worker),
      onMetric: (id: string, line: MetricLine) => this.http?.onMetric(id, line),
    };
    const done = runJob(env, job, workers).finally(() => {
      this.registry.release(job.id);
      this.running.delete(job.id);
      this.stopReasons.delete(job.id);
      this.interruptions.delete(job.id);
      void this.schedule();
    });
    this.running.set(job.id, done);
  }

  /**
   * Stops taking work. Running jobs are left as they are in KV ("running"): the next coordinator resumes
   * them from their last checkpoint, which is what a restart should do.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.registry.stop();
    await this.http?.close();
    await this.nc.close();
  }
}
