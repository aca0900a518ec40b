// The worker process: registers with the coordinator, sends heartbeats, and serves the coordinator's
// commands for the job it is assigned. One process per device.
import os from "node:os";
import { connect, type NatsConnection, type NodeConnectionOptions, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  decodeMessage,
  encodeMessage,
  jobSubjects,
  subjects,
  DEFAULT_TRANSPORT,
  isWorkerCommand,
  WorkerHeartbeat,
  WorkerRegister,
  WorkerRegisterReply,
} from "../proto/mod.js";
import { cpuDevice, modelDeviceOf, workerDevice } from "./device.js";
import { loadAddon } from "../native/js/addon.js";
import type { ComputeDevice } from "../native/js/compute_device.js";
import { deviceLabel, type Device } from "../proto/mod.js";
import type { z } from "zod";
import { JobRunner } from "./job_runner.js";
import type { PathRoots } from "../files/path_roots.js";
import { addInputRoots } from "../files/input_files.js";
import { WorkerMetrics } from "./worker_metrics.js";
import { WorkerServing, type WorkerServeOptions } from "./serving.js";

// What the CLI needs to start a worker, from this entry point alone.
export type { WorkerServeOptions };
import { processLogger } from "../observe/logger.js";
import { resolveAdvertiseHost } from "./advertise_host.js";
import type { ListenAddress } from "../observe/http_listen.js";
import { metricsRoute, startHttpServer, type RunningHttpServer } from "../observe/http_server.js";

export interface WorkerOptions {
  natsUrl: string;
  /** credentials and TLS for the NATS connection (see cli/nats_credentials.ts) */
  auth?: Partial<NodeConnectionOptions>;
  id: string;
  /** interface the data-plane TCP listener binds, and the address ring neighbours connect to */
  listenHost?: string;
  advertiseHost?: string;
  /** usable memory to report instead of the machine's RAM */
  memoryBytes?: number;
  /** what it computes on, as registered and sent in heartbeats (default: `compute` as the driver describes it,
   * else this host's CPU, memoryBytes) */
  device?: z.infer<typeof Device>;
  /** the --device it was started with, described for registration when `device` is not given */
  compute?: ComputeDevice;
  log?: Logger;
  /** where to serve Prometheus `/metrics` (none: no HTTP server) */
  http?: ListenAddress;
  /** also serve a base model (and adapters) to the requests the coordinator routes here */
  serve?: WorkerServeOptions;
  /** where commands may read and write (none: anywhere; `ringtune worker` always sets them) */
  roots?: PathRoots;
}

/**
 * Where the data-plane listener binds and what it advertises. With NATS on this machine the whole cluster
 * is local: loopback both ways. Otherwise listen everywhere and let the transport advertise this host.
 */
function dataPlaneHosts(opts: WorkerOptions): { listenHost?: string; advertiseHost?: string } {
  if (opts.listenHost || opts.advertiseHost)
    return { listenHost: opts.listenHost, advertiseHost: opts.advertiseHost ?? opts.listenHost };
  const host = new URL(opts.natsUrl.replace(/^nats:/, "http:")).hostname;
  const local = host === "127.0.0.1" || host === "localhost" || host === "::1" || host === "[::1]";
  return local ? { listenHost: "127.0.0.1", advertiseHost: "127.0.0.1" } : {};
}

export class Worker {
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;
  private commands: Subscription | undefined;
  /** the `/metrics` server, when the worker was started with one */
  http: RunningHttpServer | undefined;
  /** the base this worker serves, when started with `serve` */
  serving: WorkerServing | undefined;

  private constructor(
    readonly nc: NatsConnection,
    readonly id: string,
    private readonly runner: JobRunner,
    private readonly log: Logger,
    private readonly device: z.infer<typeof Device>,
  ) {}

  static async start(opts: WorkerOptions): Promise<Worker> {
    const log = opts.log ?? processLogger("worker", { worker: opts.id });
    const hosts = dataPlaneHosts(opts);
    if (hosts.advertiseHost) hosts.advertiseHost = await resolveAdvertiseHost(hosts.advertiseHost, log);
    const nc = await connect({
      ...opts.auth,
      servers: opts.natsUrl,
      name: `ringtune-worker-${opts.id}`,
      maxReconnectAttempts: -1,
    });
    // read when /metrics is scraped, after the runner exists
    const metrics: WorkerMetrics = new WorkerMetrics(opts.id, (): "idle" | "busy" =>
      runner.currentJob ? "busy" : "idle",
    );
    const runner: JobRunner = new JobRunner(nc, log, hosts, metrics);
    runner.pathRoots = opts.roots;
    // Models, configs, checkpoints and adapters are read by walking from these roots (files/input_files.ts):
    // a file or folder swapped for a link after the command's paths were checked cannot lead a read out.
    if (opts.roots) addInputRoots([...opts.roots.data, ...opts.roots.output]);
    // the model is built where the worker computes: GPU N, the CUDA backend on the emulator, or the CPU
    const device =
      opts.device ??
      (opts.compute
        ? workerDevice(opts.compute, opts.memoryBytes, (index) => loadAddon().probeCuda(index))
        : cpuDevice(opts.memoryBytes));
    runner.modelDevice = modelDeviceOf(device);
    const w = new Worker(nc, opts.id, runner, log, device);
    if (opts.http) w.http = await startHttpServer(opts.http, [metricsRoute(metrics.registry)], log);
    // served on the device the worker trains on
    if (opts.serve)
      w.serving = await WorkerServing.start(nc, opts.id, { ...opts.serve, device: runner.modelDevice }, log);
    w.serveCommands();
    nc.subscribe(jobSubjects.coordinatorHello, { callback: () => void w.register() });
    await w.register();
    return w;
  }

  private serveCommands(): void {
    this.commands = this.nc.subscribe(jobSubjects.workerCommandAll(this.id), {
      callback: (err, msg) => {
        if (err) return this.log.error({ err }, "command subscription");
        const command = msg.subject.split(".").pop() ?? "";
        if (!isWorkerCommand(command)) return;
        this.runner.handle(command, msg.data).then(
          (reply) => msg.respond(reply),
          (err: Error) => this.log.error({ err }, `command ${command}`),
        );
      },
    });
  }

  /** Registers until a coordinator answers (it may start after the workers), then heartbeats. */
  async register(): Promise<void> {
    const request = encodeMessage(WorkerRegister, {
      worker_id: this.id,
      host: os.hostname(),
      pid: process.pid,
      device: this.device,
      transports: [DEFAULT_TRANSPORT, DEFAULT_TRANSPORT === "tcp" ? "nats" : "tcp"],
    });
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const reply = decodeMessage(
          WorkerRegisterReply,
          (await this.nc.request(subjects.workerRegister(this.id), request, { timeout: 2000 })).data,
        );
        if (!reply.ok) throw new Error(reply.error ?? "registration refused");
        this.startHeartbeats(reply.heartbeat_ms);
        this.log.info({ device: this.device }, "registered with the coordinator");
        return;
      } catch (err) {
        if (attempt === 0) this.log.info(`waiting for a coordinator (${(err as Error).message})`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /**
   * Free device memory for the heartbeat, on a GPU or the emulator (the CUDA runtime's count); undefined on the
   * CPU, or when the device does not answer (the worker's first native call then says why).
   */
  private deviceMemoryFree(): number | undefined {
    const device = modelDeviceOf(this.device);
    if (device === "cpu") return undefined;
    try {
      return loadAddon().deviceMemory?.(device).freeBytes;
    } catch {
      return undefined;
    }
  }

  private startHeartbeats(ms: number): void {
    clearInterval(this.heartbeatTimer);
    const beat = () => {
      const job = this.runner.currentJob;
      this.nc.publish(
        subjects.workerHeartbeat(this.id),
        encodeMessage(WorkerHeartbeat, {
          worker_id: this.id,
          seq: this.seq++,
          sent_at_ms: Date.now(),
          state: job ? "busy" : "idle",
          job,
          activity: this.runner.activity,
          ring_broken: this.runner.ringBrokenReason,
          device: deviceLabel(this.device),
          device_memory_free_bytes: this.deviceMemoryFree(),
          serving: this.serving?.status(),
        }),
      );
    };
    beat();
    this.heartbeatTimer = setInterval(beat, ms);
    this.runner.onRingBroken = () => {
      if (!this.closed) beat();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    // No command is taken from here on, so the coordinator sees a worker that is going away as gone (its
    // requests have no responder) and not as one that answered errors while its job was torn down.
    this.commands?.unsubscribe();
    const job = this.runner.currentJob;
    if (job) await this.runner.release(job);
    await this.http?.close();
    await this.serving?.close();
    await this.nc.drain();
  }
}
