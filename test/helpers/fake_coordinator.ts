// A stand-in for the coordinator in CLI tests: it speaks the real job protocol (submit, cancel, cluster
// status, records in the JOBS_BUCKET KV) and walks each job through queued -> preparing -> running ->
// completed on a timer, so the commands are tested end to end without training anything.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import {
  ClusterStatusReply,
  JOBS_BUCKET,
  JobCancel,
  JobCancelReply,
  JobRecord,
  JobSubmit,
  JobSubmitReply,
  decodeJobRequest,
  encodeJobMessage,
  encodeJobRecord,
  encodeMessage,
  jobSubjects,
  type ApiErrorCode,
  type Body,
  type GenerationEval,
} from "../../proto/mod.js";
import { parseSpec } from "../../spec/load.js";

type Record_ = Body<typeof JobRecord>;

/** A refusal as the coordinator sends it: one problem (the fake finds one at a time). */
function refusal(code: ApiErrorCode, message: string) {
  const error = { code, message, key: null };
  return { ok: false, error, errors: [error] };
}

export interface FakeCoordinatorOptions {
  steps?: number;
  stepMs?: number;
  /** status the job ends with when not canceled */
  finalStatus?: "completed" | "failed";
}

export interface FakeCoordinator {
  kv: KV;
  submitted: Body<typeof JobSubmit>[];
  stop(): Promise<void>;
}

// A report in the job record's schema (proto GenerationEval: a GenerationEvalReport before and after).
const score = (exact_match: number, json_valid: number) => ({ count: 8, exact_match, json_valid, samples: [] });
const GENERATION_EVAL: GenerationEval = {
  before: { overall: score(0, 0.125), tasks: { "extract/json": score(0, 0.125) } },
  after: { overall: score(0.75, 1), tasks: { "extract/json": score(0.75, 1) } },
};

export async function startFakeCoordinator(
  url: string,
  options: FakeCoordinatorOptions = {},
): Promise<FakeCoordinator> {
  const steps = options.steps ?? 5;
  const stepMs = options.stepMs ?? 20;
  const nc: NatsConnection = await connect({ servers: url });
  const kv = await new Kvm(nc).create(JOBS_BUCKET);
  const submitted: Body<typeof JobSubmit>[] = [];
  const canceled = new Set<string>();
  const running: Promise<void>[] = [];
  let next = 1;
  let stopped = false;

  const put = (r: Record_) => kv.put(r.id, encodeJobRecord({ ...r, updated_at: new Date().toISOString() }));

  async function run(r: Record_): Promise<void> {
    const pause = () => new Promise((res) => setTimeout(res, stepMs));
    await pause();
    await put((r = { ...r, status: "preparing" }));
    await pause();
    await put((r = { ...r, status: "running", total_steps: steps }));
    for (let step = 1; step <= steps; step++) {
      if (stopped) return;
      if (canceled.has(r.id)) {
        await put({ ...r, status: "canceled", message: "canceled by request" });
        return;
      }
      await pause();
      const loss = 3 / step;
      r = { ...r, step, lr: 1e-3, tokens_per_s: 1234, train_loss: { first: r.train_loss.first ?? loss, last: loss } };
      await put(r);
    }
    if (options.finalStatus === "failed") await put({ ...r, status: "failed", message: "worker-1 lost" });
    else await put({ ...r, status: "completed", val_loss: 0.9, generation_eval: GENERATION_EVAL });
  }

  nc.subscribe(jobSubjects.submit, {
    callback: (_err, msg) => {
      const job = decodeJobRequest(JobSubmit, msg.data, "msgpack");
      submitted.push(job);
      try {
        parseSpec(job.spec, job.source ?? "job", job.base_dir ?? "/");
        const wanted = Number(job.spec.workers ?? 1);
        if (wanted > 2) throw new Error(`workers: ${wanted} wanted, 2 registered`);
      } catch (err) {
        msg.respond(encodeJobMessage(JobSubmitReply, refusal("invalid_spec", (err as Error).message), "msgpack"));
        return;
      }
      const id = `job-${next++}`;
      const now = new Date().toISOString();
      const record: Record_ = {
        id,
        status: "queued",
        spec: job.spec,
        base_dir: job.base_dir ?? "/",
        source: job.source,
        created_at: now,
        updated_at: now,
        step: 0,
        total_steps: 0,
        train_loss: {},
        output: `/tmp/runs/${id}`,
        workers: ["worker-0"],
      };
      // The record exists before the reply, as the real coordinator writes it: a watcher never misses it.
      put(record).then(() => {
        msg.respond(encodeJobMessage(JobSubmitReply, { ok: true, id }, "msgpack"));
        running.push(run(record));
      });
    },
  });

  nc.subscribe(jobSubjects.cancel, {
    callback: (_err, msg) => {
      const { id } = decodeJobRequest(JobCancel, msg.data, "msgpack");
      void kv.get(id).then((known) => {
        if (!known || known.operation !== "PUT") {
          msg.respond(encodeJobMessage(JobCancelReply, refusal("not_found", `no job '${id}'`), "msgpack"));
          return;
        }
        canceled.add(id);
        msg.respond(encodeJobMessage(JobCancelReply, { ok: true }, "msgpack"));
      });
    },
  });

  nc.subscribe(jobSubjects.clusterStatus, {
    callback: (_err, msg) => {
      const device = { kind: "cpu" as const, name: "x86_64", memory_bytes: 8 * 2 ** 30, cores: 4 };
      msg.respond(
        encodeMessage(ClusterStatusReply, {
          workers: [
            {
              worker_id: "worker-0",
              host: "node-a",
              pid: 100,
              device,
              state: "busy",
              job: "job-1",
              last_seen_ms_ago: 250,
            },
            { worker_id: "worker-1", host: "node-a", pid: 101, device, state: "idle", last_seen_ms_ago: 900 },
          ],
          jobs_running: ["job-1"],
        }),
      );
    },
  });

  await nc.flush();
  return {
    kv,
    submitted,
    async stop() {
      stopped = true;
      await Promise.allSettled(running);
      await nc.close();
    },
  };
}
