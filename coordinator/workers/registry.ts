// The workers the coordinator knows: registered by request, kept alive by heartbeats, reserved by jobs.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  deviceLabel,
  clipText,
  decodeMessage,
  MESSAGE_LIMIT,
  encodeMessage,
  subjects,
  WorkerHeartbeat,
  WorkerRegister,
  WorkerRegisterReply,
  STOPPING_ACTIVITY,
  type Body,
  type ServingStatus,
  type WorkerInfo,
} from "../../proto/mod.js";
import type { WorkerMemory } from "../jobs/memory_fit.js";

interface Entry {
  info: Body<typeof WorkerRegister>;
  lastSeen: number;
  job?: string;
  /** the last heartbeat's activity: what the worker is busy with (loading weights 37%, ...) */
  activity?: string;
  /** the last heartbeat's serving status, for a worker started to serve a base */
  serving?: ServingStatus;
  /** the last heartbeat's free device memory (GPU and cuda-emu workers) */
  deviceMemoryFree?: number;
  /** the job whose broken ring this worker reported (told to onRingBroken once per reservation) */
  ringBrokenJob?: string;
}

export class WorkerRegistry {
  private readonly workers = new Map<string, Entry>();
  /** called once when a worker that runs a job stops sending heartbeats */
  onLost: (workerId: string, job: string) => void = () => {};
  /** called once per job when a worker of it reports its ring broke (a neighbour's link closed) */
  onRingBroken: (workerId: string, job: string, why: string) => void = () => {};
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    readonly heartbeatMs = 1000,
    private readonly lostAfterMs = 10_000,
  ) {}

  start(): void {
    this.nc.subscribe(subjects.workerRegisterAll, {
      callback: (_err, msg) => {
        try {
          const info = decodeMessage(WorkerRegister, msg.data);
          const sender = subjects.workerOfSubject(msg.subject);
          if (info.worker_id !== sender)
            throw new Error(`a registration on worker ${sender}'s subject names worker ${info.worker_id}`);
          const known = this.workers.get(info.worker_id);
          this.workers.set(info.worker_id, { info, lastSeen: Date.now(), job: known?.job });
          this.log.info(
            { worker: info.worker_id, device: info.device.name },
            known ? "worker registered again" : "worker registered",
          );
          msg.respond(encodeMessage(WorkerRegisterReply, { ok: true, heartbeat_ms: this.heartbeatMs }));
        } catch (err) {
          const error = clipText((err as Error).message, MESSAGE_LIMIT);
          this.log.warn({ error }, "registration refused");
          try {
            msg.respond(encodeMessage(WorkerRegisterReply, { ok: false, error, heartbeat_ms: this.heartbeatMs }));
          } catch (replyErr) {
            this.log.warn({ err: replyErr }, "could not answer a registration");
          }
        }
      },
    });
    this.nc.subscribe(subjects.workerHeartbeatAll, {
      callback: (_err, msg) => {
        try {
          const hb = decodeMessage(WorkerHeartbeat, msg.data);
          const sender = subjects.workerOfSubject(msg.subject);
          if (hb.worker_id !== sender) {
            this.warnOnce(`a heartbeat on worker ${sender}'s subject names worker ${hb.worker_id}: ignored`);
            return;
          }
          const w = this.workers.get(hb.worker_id);
          if (w) {
            w.lastSeen = Date.now();
            w.activity = hb.activity;
            w.serving = hb.serving;
            w.deviceMemoryFree = hb.device_memory_free_bytes;
            if (hb.ring_broken && w.job && hb.job === w.job && w.ringBrokenJob !== w.job) {
              w.ringBrokenJob = w.job;
              this.onRingBroken(hb.worker_id, w.job, hb.ring_broken);
            }
          }
        } catch (err) {
          this.warnOnce(`bad heartbeat on ${clipText(msg.subject)}: ${clipText((err as Error).message)}`);
        }
      },
    });
    this.timer = setInterval(() => this.checkLost(), this.heartbeatMs);
  }

  /** Repeated bad messages are logged once each (a flood of them must not flood the log). */
  private readonly warned = new Set<string>();
  private warnOnce(message: string): void {
    if (this.warned.has(message) || this.warned.size >= 1000) return;
    this.warned.add(message);
    this.log.warn(message);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private alive(w: Entry): boolean {
    return Date.now() - w.lastSeen < this.lostAfterMs;
  }

  private checkLost(): void {
    for (const [id, w] of this.workers) {
      if (w.job && !this.alive(w)) {
        const job = w.job;
        w.job = undefined;
        this.log.warn({ worker: id, job }, "worker lost");
        this.onLost(id, job);
      }
    }
  }

  /** What the worker said it is doing in its last heartbeat, if anything. */
  activity(id: string): string | undefined {
    return this.workers.get(id)?.activity;
  }

  /** A worker that did not answer is not scheduled until its next heartbeat or registration. */
  suspect(id: string): void {
    const w = this.workers.get(id);
    if (w) w.lastSeen = 0;
  }

  /**
   * Live workers with no job, in a stable order (by id). A worker whose last heartbeat says it is still
   * stopping an interrupted step is not idle yet: a new job on it would wait behind (or overlap) that work.
   */
  idle(): string[] {
    return [...this.workers.entries()]
      .filter(([, w]) => !w.job && this.alive(w) && w.activity !== STOPPING_ACTIVITY)
      .map(([id]) => id)
      .sort();
  }

  /** Serving workers whose last heartbeat is at most `withinMs` old, with what they serve. */
  serving(withinMs: number): { id: string; serving: ServingStatus }[] {
    const now = Date.now();
    return [...this.workers.entries()]
      .filter(([, w]) => w.serving && now - w.lastSeen <= withinMs)
      .map(([id, w]) => ({ id, serving: w.serving! }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The device a worker registered, named for people and records; undefined for a worker never seen. */
  deviceOf(id: string): string | undefined {
    const w = this.workers.get(id);
    return w && deviceLabel(w.info.device);
  }

  /** Live workers with the memory and threads they reported. */
  liveMemory(): WorkerMemory[] {
    return [...this.workers.entries()]
      .filter(([, w]) => this.alive(w))
      .map(([id, w]) => ({
        id,
        memoryBytes: w.info.device.memory_bytes,
        cores: w.info.device.cores,
        device: w.info.device.kind,
      }));
  }

  counts(): { registered: number; idle: number } {
    const live = [...this.workers.values()].filter((w) => this.alive(w));
    return { registered: live.length, idle: live.filter((w) => !w.job).length };
  }

  reserve(ids: string[], job: string): void {
    for (const id of ids) {
      const w = this.workers.get(id)!;
      w.job = job;
      w.ringBrokenJob = undefined; // a new ring of the same job may break again
    }
  }

  release(job: string): void {
    for (const w of this.workers.values()) if (w.job === job) w.job = undefined;
  }

  status(): WorkerInfo[] {
    const now = Date.now();
    return [...this.workers.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, w]) => ({
        worker_id: id,
        host: w.info.host,
        pid: w.info.pid,
        device: { ...w.info.device, memory_free_bytes: w.deviceMemoryFree },
        state: !this.alive(w) ? "lost" : w.job ? "busy" : "idle",
        job: w.job,
        last_seen_ms_ago: now - w.lastSeen,
      }));
  }
}
