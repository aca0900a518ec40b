// The coordinator process: takes jobs by NATS request, keeps them in JetStream KV, schedules them on idle
// workers, and runs each job's step loop. A restarted coordinator resumes interrupted jobs from their
// last checkpoint. Only one coordinator is active at a time (a lease in KV); another started beside it
// stands by and takes over when the active one's lease expires.
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ListenAddress } from "../observe/http_listen.js";
import { processLogger } from "../observe/logger.js";
import { CoordinatorHttp } from "./observe/coordinator_http.js";
import { clipText, ClusterStatusReply, encodeMessage, jobSubjects, MESSAGE_LIMIT } from "../proto/mod.js";
import type { JobSpec } from "../spec/job_spec.js";
import { checkedJobSpec, type CheckedSpec } from "./jobs/checked_spec.js";
import { serveJobApi } from "./jobs/job_api_server.js";
import type { PathRoots } from "../files/path_roots.js";
import { addInputRoots } from "../files/input_files.js";
import { memoryRefusal, workersThatFit } from "./jobs/memory_fit.js";
import { readModelShape } from "../spec/job_memory.js";
import { JobStore, type Job } from "./jobs/store.js";
import { CoordinatorLease, DEFAULT_LEASE_TTL_MS } from "./lease.js";

// What the CLI needs to start a coordinator, from this entry point alone.
export { DEFAULT_LEASE_TTL_MS };
import { recoverInterruptedJob } from "./jobs/recovery.js";
import { parseSpec } from "../spec/load.js";
import { CoordinatorStopping, JobCancelled } from "./train/attempt.js";
import { runJob } from "./train/run_job.js";
import type { MetricLine } from "./train/metrics_file.js";
import { NatsOutageError, WorkerCommandError, WorkerLostError } from "./train/worker_client.js";
import { WorkerRegistry } from "./workers/registry.js";
import { startHttp, type HttpFrontDoor } from "../serving/http_server.js";
import { ServeRouter } from "./serve/serve_router.js";
import { workerRange } from "../spec/workers_spec.js";

export interface CoordinatorOptions {
  natsUrl: string;
  /** credentials and TLS for the NATS connection (see cli/nats_credentials.ts) */
  auth?: Partial<NodeConnectionOptions>;
  log?: Logger;
  heartbeatMs?: number;
  /** a worker silent this long is lost */
  lostAfterMs?: number;
  /** how long the active coordinator's lease outlives its last renewal (a standby's takeover delay) */
  leaseTtlMs?: number;
  /**
   * Called when this coordinator lost its lease to another (it was stopped or cut off past the lease's TTL):
   * it has stopped taking work. A process should exit non-zero; the default only closes the coordinator.
   */
  onLeaseLost?: (reason: string) => void;
  /** where jobs may read inputs and write outputs; undefined: anywhere */
  roots?: PathRoots;
  /** where to serve the dashboard and Prometheus `/metrics` (none: no HTTP server) */
  http?: ListenAddress;
  /** an OpenAI-compatible HTTP door that routes each request to a serving worker holding its model */
  serveHttp?: { host: string; port: number; apiKey?: string };
}

export class Coordinator {
  private readonly stopReasons = new Map<string, string>();
  /** per running job: rejects when one of its workers is lost */
  private readonly interruptions = new Map<string, { promise: Promise<never>; reject: (e: Error) => void }>();
  private readonly running = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private scheduling = false;
  /** set by close(): a coordinator that stepped down starts no job, even one a finishing job would trigger */
  private closing = false;
  /** the dashboard and /metrics, when started with `http` */
  http: CoordinatorHttp | undefined;
  /** the routed OpenAI-compatible door, when started with `serveHttp` */
  serveHttp: HttpFrontDoor | undefined;
  /** NATS disconnections so far: a job whose run saw one ended for the outage, not for its own fault */
  private outages = 0;
  private connected = true;
  private readonly whenReconnected: (() => void)[] = [];
  /** each job's spec as checked against the roots and the file system: once per job, not per scheduling pass */
  private readonly checked = new Map<string, Promise<CheckedSpec>>();

  private constructor(
    readonly nc: NatsConnection,
    private readonly store: JobStore,
    private readonly registry: WorkerRegistry,
    private readonly log: Logger,
    private readonly lease: CoordinatorLease,
    private readonly roots: PathRoots | undefined,
  ) {}

  /**
   * Connects, waits for the lease (standing by while another coordinator is active), then serves. Any
   * failure on the way closes what was opened and rejects, so a process exits instead of hanging half-up.
   */
  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    const log = opts.log ?? processLogger("coordinator");
    // Every data file is checked again as it is opened, by the threads of the data pipeline too (they
    // inherit the environment): what changed after the spec was checked cannot lead a read out of the roots.
    if (opts.roots) addInputRoots([...opts.roots.data, ...opts.roots.output]);
    const nc = await connect({
      ...opts.auth,
      servers: opts.natsUrl,
      name: "ringtune-coordinator",
      maxReconnectAttempts: -1,
    });
    let lease: CoordinatorLease | undefined;
    try {
      lease = await CoordinatorLease.acquire(nc, log, opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS, () => nc.isClosed());
      return await Coordinator.serveWith(nc, lease, opts, log);
    } catch (err) {
      await lease?.release();
      await nc.close().catch(() => {});
      throw err;
    }
  }

  private static async serveWith(
    nc: NatsConnection,
    lease: CoordinatorLease,
    opts: CoordinatorOptions,
    log: Logger,
  ): Promise<Coordinator> {
    const store = await JobStore.open(nc);
    for (const bad of store.unreadable)
      log.error(bad, `job record '${bad.key}' cannot be read and is skipped (${bad.reason})`);
    const registry = new WorkerRegistry(nc, log, opts.heartbeatMs ?? 1000, opts.lostAfterMs ?? 10_000);
    const c = new Coordinator(nc, store, registry, log, lease, opts.roots);
    if (opts.http) c.http = await CoordinatorHttp.start(opts.http, store, () => registry.status(), log);
    lease.onLost = (reason) => {
      log.error({ reason }, "lost the coordinator lease; stopping");
      void c.close().finally(() => opts.onLeaseLost?.(reason));
    };
    c.watchConnection();
    await c.recoverInterruptedJobs();
    registry.onLost = (worker, job) =>
      c.interruptions.get(job)?.reject(new WorkerLostError(`worker ${worker} stopped sending heartbeats`, worker));
    // A survivor whose neighbour died between commands says so at once: a command sent to the dead worker
    // meanwhile may be lost with its connection, and would otherwise wait for the heartbeat threshold.
    registry.onRingBroken = (worker, job, why) =>
      c.interruptions.get(job)?.reject(new WorkerCommandError(`worker ${worker}: ${why}`, worker, false));
    registry.start();
    if (opts.serveHttp) {
      const { host, port, apiKey } = opts.serveHttp;
      const router = new ServeRouter(nc, registry, log);
      c.serveHttp = await startHttp(router, host, port, (msg) => log.warn(msg), apiKey);
    }
    c.serve();
    nc.publish(jobSubjects.coordinatorHello); // workers that were up before us register again
    c.timer = setInterval(() => void c.schedule(), 500);
    log.info({ jobs: store.all().length }, "coordinator ready");
    return c;
  }

  /**
   * Jobs a previous coordinator was running go back to the queue, to resume from their last checkpoint;
   * a cancel it recorded but did not finish is finished here, and a job that was running through too many
   * coordinator restarts (it may be what crashes them) is failed instead.
   */
  private async recoverInterruptedJobs(): Promise<void> {
    for (const job of this.store.all()) {
      const patch = recoverInterruptedJob(job);
      if (!patch) continue;
      await this.store.update(job.id, patch);
      this.log.info({ job: job.id, status: patch.status }, patch.message);
    }
  }

  /**
   * A NATS outage loses the replies in flight: once the connection is back, every running job is interrupted
   * and requeued from its checkpoint (at once, rather than after its requests' long timeouts).
   */
  private watchConnection(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === "disconnect") {
          this.outages++;
          this.connected = false;
          this.log.warn("lost the connection to NATS; reconnecting");
        } else if (s.type === "reconnect") {
          await this.adoptRevisionsWhenReady();
          this.connected = true;
          this.log.warn({ jobs: [...this.interruptions.keys()] }, "reconnected to NATS; requeueing running jobs");
          for (const i of this.interruptions.values())
            i.reject(new NatsOutageError("the connection to NATS was lost mid-job and restored"));
          for (const resume of this.whenReconnected.splice(0)) resume();
        }
      }
    })();
  }

  /** JetStream answers again some moments after the server is back: retried for up to a minute. */
  private async adoptRevisionsWhenReady(): Promise<void> {
    for (let attempt = 1; attempt <= 60; attempt++) {
      try {
        await this.store.adoptRevisions();
        return;
      } catch (err) {
        if (attempt === 60) this.log.error({ err }, "could not re-read the job records after reconnecting");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private serve(): void {
    serveJobApi(this.nc, this.store, this.log, {
      onAccepted: () => void this.schedule(),
      liveMemory: () => this.registry.liveMemory(),
      roots: this.roots,
      requestStop: (id, why) => {
        if (!this.running.has(id)) return false;
        this.stopReasons.set(id, why);
        // The wait on the step in progress ends now; releasing the ring then interrupts the workers' step.
        this.interruptions.get(id)?.reject(new JobCancelled(why));
        return true;
      },
    });
    this.nc.subscribe(jobSubjects.clusterStatus, {
      callback: (_err, msg) => {
        try {
          msg.respond(
            encodeMessage(ClusterStatusReply, {
              workers: this.registry.status(),
              jobs_running: [...this.running.keys()],
            }),
          );
        } catch (err) {
          // a request with a reply subject it may not use, a reply over max_payload: never the process's end
          this.log.warn({ err }, "could not answer a cluster status request");
        }
      },
    });
  }

  /**
   * Starts every queued job that enough idle workers with enough memory can take, oldest first; says why
   * others wait, and fails a job that the registered workers can never hold (they joined after intake).
   */
  private async schedule(): Promise<void> {
    if (this.scheduling || this.closing) return;
    this.scheduling = true;
    try {
      for (const job of this.store.all()) {
        if ((job.status !== "queued" && job.status !== "waiting") || this.running.has(job.id)) continue;
        if (job.cancel_requested) continue; // its cancel is being written; the job never starts
        // Roots may have narrowed since the job was accepted (a restart with other flags): checked again,
        // once per job and off the event loop's critical path. A record an older coordinator accepted under
        // looser bounds fails here; the other jobs run.
        if (!this.checked.has(job.id)) this.checked.set(job.id, checkedJobSpec(job, this.roots));
        const checked = await this.checked.get(job.id)!;
        if ("problem" in checked) {
          this.checked.delete(job.id);
          await this.store.update(job.id, { status: "failed", message: clipText(checked.problem, MESSAGE_LIMIT) });
          continue;
        }
        const { spec } = checked;
        // An elastic job starts with as many idle workers as there are, from its min up to its max.
        const { min: want, max } = workerRange(spec.workers);
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
        this.start(job, idle.slice(0, max), spec);
      }
    } catch (err) {
      this.log.error({ err }, "scheduling");
    } finally {
      this.scheduling = false;
    }
  }

  /** Idle workers with the memory `job` needs (none when its spec or model cannot be read now). */
  private idleWorkersFor(job: Job): number {
    try {
      const spec = parseSpec(job.spec, job.source ?? job.id, job.base_dir);
      const fit = new Set(workersThatFit(spec, readModelShape(spec), this.registry.liveMemory()).map((w) => w.id));
      return this.registry.idle().filter((id) => fit.has(id)).length;
    } catch {
      return 0;
    }
  }

  private start(job: Job, workers: string[], spec: JobSpec): void {
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
      stopReason: (id: string) =>
        this.stopReasons.get(id) ?? (this.store.get(id)?.cancel_requested ? "canceled by request" : undefined),
      interruption: (id: string) => this.interruptions.get(id)!.promise,
      suspect: (worker: string) => this.registry.suspect(worker),
      activity: (worker: string) => this.registry.activity(worker),
      deviceOf: (worker: string) => this.registry.deviceOf(worker),
      // Half a heartbeat: an activity a worker reports is shown before its next one can replace it.
      activityRefreshMs: this.registry.heartbeatMs / 2,
      onMetric: (id: string, line: MetricLine) => this.http?.onMetric(id, line),
      outages: () => this.outages,
      connectedAgain: () =>
        this.connected ? Promise.resolve() : new Promise<void>((r) => this.whenReconnected.push(r)),
      holdsLease: () => this.lease.stillHeld(),
      idleWorkersFor: (j: Job) => this.idleWorkersFor(j),
    };
    const done = runJob(env, job, workers, spec).finally(() => {
      if (this.store.get(job.id)?.status !== "queued") this.checked.delete(job.id);
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
    if (this.nc.isClosed()) return;
    this.closing = true;
    clearInterval(this.timer);
    this.registry.stop();
    await this.http?.close();
    await this.serveHttp?.close();
    await this.lease.release();
    await this.nc.close();
    // Running jobs end what they were doing (a data preparation's threads, say) once nothing can be written
    // any more: their records stay as they are, and the process is free to exit.
    for (const i of this.interruptions.values()) i.reject(new CoordinatorStopping("the coordinator is stopping"));
  }
}
