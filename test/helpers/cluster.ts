// A whole ringtune cluster inside a test: a real nats-server, the coordinator and N workers (each with
// its own NATS connection and model, as separate processes would have), plus job helpers.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { Coordinator, type CoordinatorOptions } from "../../coordinator/main.js";
import {
  ClusterStatusReply,
  ClusterStatusRequest,
  decodeJobRecord,
  decodeJobReply,
  decodeMessage,
  encodeJobMessage,
  encodeMessage,
  FINAL_STATUSES,
  JOBS_BUCKET,
  JobCancel,
  JobCancelReply,
  jobSubjects,
  JobSubmit,
  JobSubmitReply,
  type Body,
  type JobRecordBody,
} from "../../proto/mod.js";
import { Worker, type WorkerOptions } from "../../worker/main.js";
import { startNatsServer, type NatsServer } from "./nats_server.js";
import { TINY_BYTE_LLAMA } from "./tiny_model.js";

export type { JobRecordBody };

/** A job API reply with its problems' messages joined, one per line, as the CLI prints them. */
export interface JobReply {
  ok: boolean;
  id?: string;
  error?: string;
}

function flatten(reply: { ok: boolean; id?: string; errors?: { message: string }[] }): JobReply {
  return { ok: reply.ok, id: reply.id, error: reply.errors?.map((e) => e.message).join("\n") };
}

/** HTTP servers of a test cluster: loopback only, on a port the system picks */
const LOOPBACK_FREE_PORT = { host: "127.0.0.1", port: 0 };

const quiet = pino({ level: process.env.RINGTUNE_TEST_LOG ?? "silent" });

/** Timing of the coordinator: how fast it declares a silent worker lost, how long its lease outlives a renewal. */
export type CoordinatorTiming = Pick<CoordinatorOptions, "heartbeatMs" | "lostAfterMs" | "leaseTtlMs">;

export interface LogLine {
  msg?: string;
  job?: string;
  [key: string]: unknown;
}

export class TestCluster {
  /** every line the coordinator(s) of this cluster logged at info level or above, parsed */
  readonly coordinatorLog: LogLine[] = [];

  private constructor(
    readonly server: NatsServer,
    readonly client: NatsConnection,
    public coordinator: Coordinator | undefined,
    readonly workers: Worker[],
    private readonly timing: CoordinatorTiming,
    /** whether the coordinator and the workers serve HTTP (dashboard, /metrics) on free loopback ports */
    private readonly http = false,
  ) {}

  static async start(
    workers: number,
    opts: {
      coordinator?: boolean;
      timing?: CoordinatorTiming;
      http?: boolean;
      server?: NatsServer;
      /** what worker i registers as computing on (default: this host's CPU) */
      devices?: WorkerOptions["device"][];
    } = {},
  ): Promise<TestCluster> {
    const server = opts.server ?? (await startNatsServer({ maxPayload: 8 * 1024 * 1024 }));
    const client = await connect({ servers: server.url });
    const ws: Worker[] = [];
    const cluster = new TestCluster(server, client, undefined, ws, opts.timing ?? {}, opts.http);
    if (opts.coordinator !== false) await cluster.startCoordinator();
    const http = opts.http ? LOOPBACK_FREE_PORT : undefined;
    for (let i = 0; i < workers; i++)
      ws.push(await Worker.start({ natsUrl: server.url, id: `w${i}`, log: quiet, http, device: opts.devices?.[i] }));
    if (cluster.coordinator)
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= workers, "workers to register");
    return cluster;
  }

  /** One more worker joining the running cluster (a pod scaled up); resolves once it has registered. */
  async addWorker(id: string): Promise<Worker> {
    const worker = await Worker.start({ natsUrl: this.server.url, id, log: quiet });
    this.workers.push(worker);
    return worker;
  }

  async startCoordinator(): Promise<void> {
    const lines = this.coordinatorLog;
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
    const http = this.http ? LOOPBACK_FREE_PORT : undefined;
    this.coordinator = await Coordinator.start({ natsUrl: this.server.url, log, ...this.timing, http });
  }

  /** The step each start of the job began after (0: from scratch), in order, from the coordinator's log. */
  startSteps(jobId: string): number[] {
    return this.coordinatorLog
      .filter((l) => l.msg === "job prepared" && l.job === jobId)
      .map((l) => l.startStep as number);
  }

  /** Idle workers as the coordinator sees them (0 while no coordinator answers). */
  async idleWorkers(): Promise<number> {
    return (await this.registeredWorkers()).filter((w) => w.state === "idle").length;
  }

  /** The workers as the coordinator's cluster status lists them (none while no coordinator answers). */
  async registeredWorkers(): Promise<Body<typeof ClusterStatusReply>["workers"]> {
    const r = await this.client
      .request(jobSubjects.clusterStatus, encodeMessage(ClusterStatusRequest, {}), { timeout: 2000 })
      .catch(() => undefined);
    return r ? decodeMessage(ClusterStatusReply, r.data).workers : [];
  }

  /** Sends a spec (an object, paths relative to baseDir) as a JSON request and returns the reply. */
  async submit(spec: Record<string, unknown>, baseDir: string): Promise<JobReply> {
    const r = await this.client.request(
      jobSubjects.submit,
      encodeJobMessage(JobSubmit, { spec, base_dir: baseDir, source: "test.yaml" }, "json"),
      { timeout: 10_000 },
    );
    return flatten(decodeJobReply(JobSubmitReply, r.data, "json"));
  }

  async cancel(id: string): Promise<JobReply> {
    const r = await this.client.request(jobSubjects.cancel, encodeJobMessage(JobCancel, { id }, "json"), {
      timeout: 10_000,
    });
    return flatten(decodeJobReply(JobCancelReply, r.data, "json"));
  }

  async record(id: string): Promise<JobRecordBody | undefined> {
    const kv = await new Kvm(this.client).open(JOBS_BUCKET);
    const e = await kv.get(id);
    return e && e.operation === "PUT" ? decodeJobRecord(e.value) : undefined;
  }

  async waitFor(cond: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Submits and waits for a final status; throws with the job's message unless it completed. */
  async run(spec: Record<string, unknown>, baseDir: string): Promise<JobRecordBody> {
    const reply = await this.submit(spec, baseDir);
    if (!reply.ok) throw new Error(`submit refused: ${reply.error}`);
    const rec = await this.finished(reply.id!);
    if (rec.status !== "completed") throw new Error(`job ${rec.id} ${rec.status}: ${rec.message}`);
    return rec;
  }

  /** Waits until the job reaches a final status (completed, failed or canceled) and returns its record. */
  async finished(id: string, timeoutMs?: number): Promise<JobRecordBody> {
    let rec: JobRecordBody | undefined;
    await this.waitFor(
      async () => {
        rec = await this.record(id);
        return !!rec && FINAL_STATUSES.includes(rec.status);
      },
      `job ${id} to finish`,
      timeoutMs,
    );
    return rec!;
  }

  async stop(): Promise<void> {
    for (const w of this.workers) await w.close().catch(() => {});
    await this.coordinator?.close().catch(() => {});
    await this.client.close();
    await this.server.stop();
  }
}

/** A temp folder with a tiny model config and a small two-task chat dataset. */
export function trainingFixture(parent = tmpdir()): { dir: string; baseSpec: Record<string, unknown> } {
  const dir = mkdtempSync(path.join(parent, "ringtune-train-"));
  writeFileSync(path.join(dir, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
  const lines: string[] = [];
  const names = ["Ana", "Bo", "Cy", "Di", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo"];
  for (let i = 0; i < 60; i++) {
    const n = names[i % names.length]!;
    const task = i % 2 === 0 ? "extract/name" : "math/add";
    const q = task === "extract/name" ? `Who is this? ${n} is ${20 + i}.` : `${i} + ${i % 7} = ?`;
    const a = task === "extract/name" ? `{"name":"${n}"}` : String(i + (i % 7));
    lines.push(
      JSON.stringify({
        task_type: task,
        messages: [
          { role: "user", content: q },
          { role: "assistant", content: a },
        ],
      }),
    );
  }
  writeFileSync(path.join(dir, "train.jsonl"), lines.join("\n") + "\n");
  const baseSpec = {
    model: { init: { config: "model.json", seed: 3 } },
    tokenizer: "byte",
    template: "chatml",
    data: [{ path: "train.jsonl" }],
    val_size: 0.1,
    seq_len: 64,
    cache_dir: "cache",
    global_batch_rows: 6,
    micro_batch_rows: 2,
    lr: 2e-3,
    warmup_steps: 3,
    schedule: "cosine",
    weight_decay: 0.01,
    checksum_every: 5,
  };
  return { dir, baseSpec };
}

export interface MetricLine {
  step: number;
  loss?: number;
  val_loss?: number;
  lr?: number;
  grad_norm?: number;
  targets?: number;
  tokens?: number;
  loss_by_task?: Record<string, number>;
  targets_by_task?: Record<string, number>;
}

export function readMetrics(output: string): MetricLine[] {
  return readFileSync(path.join(output, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as MetricLine);
}
