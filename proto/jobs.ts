// Job control messages and the job record kept in the JetStream KV bucket (JOBS_BUCKET).
import { z } from "zod";
import { defineMessage } from "./codec.js";
import { ApiError } from "./job_api_error.js";
import { GenerationEval } from "./generation_eval.js";
import { MemoryEstimateRecord } from "./memory_estimate.js";
import { SubjectToken } from "./subjects.js";

/** A client's id for one submission: printable, short, no spaces (it is echoed in logs and messages). */
export const SubmitRequestId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, "letters, digits and . _ : - only");

/**
 * Request on jobSubjects.submit. `spec` has the keys of a job file. Relative paths in it are resolved
 * against `base_dir`; without `base_dir` every path in the spec must be absolute and `output` is required.
 */
export const JobSubmit = defineMessage("JobSubmit", {
  spec: z.record(z.string(), z.unknown()),
  base_dir: z.string().min(1).max(4096).optional(),
  /** the file the spec came from, for error messages */
  source: z.string().max(4096).optional(),
  /**
   * chosen by the client, the same for every retry of one submission: a request whose id a job already
   * carries returns that job instead of creating another (a reply lost in a coordinator failover is retried)
   */
  request_id: SubmitRequestId.optional(),
});

/** A refusal: `error` is the first problem, `errors` every problem (each naming its key). */
const refusal = { error: ApiError.optional(), errors: z.array(ApiError).optional() };

export const JobSubmitReply = defineMessage("JobSubmitReply", {
  ok: z.boolean(),
  id: SubjectToken.optional(),
  ...refusal,
});

export const JobCancel = defineMessage("JobCancel", { id: SubjectToken });
export const JobCancelReply = defineMessage("JobCancelReply", { ok: z.boolean(), ...refusal });

export const JOB_STATUSES = ["queued", "waiting", "preparing", "running", "completed", "failed", "canceled"] as const;
export const JobStatus = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof JobStatus>;
export const FINAL_STATUSES: readonly JobStatus[] = ["completed", "failed", "canceled"];

const TaskLosses = z.record(z.string(), z.number());

/** One job, as kept in KV and shown by `ringtune watch/jobs` and `submit --json`. */
export const JobRecord = defineMessage("JobRecord", {
  id: SubjectToken,
  status: JobStatus,
  /** why it waits, failed or was resumed */
  message: z.string().optional(),
  spec: z.record(z.string(), z.unknown()),
  base_dir: z.string(),
  source: z.string().optional(),
  created_at: z.string(),
  updated_at: z.string(),
  step: z.number().int().min(0),
  total_steps: z.number().int().min(0),
  train_loss: z.object({ first: z.number().optional(), last: z.number().optional() }),
  val_loss: z.number().optional(),
  val_loss_by_task: TaskLosses.optional(),
  lr: z.number().optional(),
  tokens_per_s: z.number().optional(),
  eta_s: z.number().optional(),
  output: z.string(),
  workers: z.array(z.string()),
  /** the device of each of `workers`, in the same order, as deviceLabel() names it ("cuda-emu (...)") */
  worker_devices: z.array(z.string().max(300)).max(4096).optional(),
  last_checkpoint: z.object({ step: z.number().int(), dir: z.string() }).optional(),
  /** generation-based evaluation (before / after), when the job asks for it */
  generation_eval: GenerationEval.optional(),
  cancel_requested: z.boolean().optional(),
  /** how many times the job has been started (a lost worker requeues it from its last checkpoint) */
  attempts: z.number().int().min(0).optional(),
  /** coordinator restarts the job was running through; too many fail it (it may be what crashes them) */
  coordinator_restarts: z.number().int().min(0).optional(),
  /** rings re-formed from the last checkpoint after a worker was lost or hung; these use up no attempt */
  ring_reformations: z.number().int().min(0).optional(),
  /** the ring's size over time: each formation's first step, its worker count and when it formed */
  ring_sizes: z
    .array(
      z.object({
        step: z.number().int().min(0),
        size: z.number().int().min(1),
        at: z.string(),
        /** how this formation's gradients travel: "nccl", or the transport with host staging and why */
        data_plane: z.string().max(2000).optional(),
        /** under sequence parallelism: how each group's attention blocks travel, in group order (as data_plane) */
        sequence_data_planes: z.array(z.string().max(2000)).max(4096).optional(),
      }),
    )
    .max(256)
    .optional(),
  /** the submission's client request id: a retried submit with it returns this job */
  request_id: z.string().optional(),
  /** what one rank needs in memory, estimated at intake */
  memory_estimate: MemoryEstimateRecord.optional(),
});

/** A worker as the coordinator sees it (cluster status). */
export const WorkerInfo = z.object({
  worker_id: SubjectToken,
  host: z.string(),
  pid: z.number().int(),
  device: z.object({
    kind: z.enum(["cpu", "cuda", "cuda-emu"]),
    index: z.number().optional(),
    name: z.string(),
    memory_bytes: z.number(),
    /** free device memory in the last heartbeat of a GPU (or cuda-emu) worker */
    memory_free_bytes: z.number().optional(),
    cores: z.number(),
  }),
  state: z.enum(["idle", "busy", "lost"]),
  job: z.string().optional(),
  last_seen_ms_ago: z.number(),
});
export type WorkerInfo = z.infer<typeof WorkerInfo>;

/** Request on jobSubjects.get: one job's record. */
export const JobGet = defineMessage("JobGet", { id: SubjectToken });
export const JobGetReply = defineMessage("JobGetReply", {
  ok: z.boolean(),
  job: JobRecord.schema.omit({ v: true }).optional(),
  ...refusal,
});

/** Request on jobSubjects.list: every job, oldest first, optionally only those with one of `status`. */
export const JobList = defineMessage("JobList", { status: z.array(JobStatus).optional() });
export const JobListReply = defineMessage("JobListReply", {
  ok: z.boolean(),
  jobs: z.array(JobRecord.schema.omit({ v: true })).optional(),
  /**
   * records left out so that the reply fits in one NATS message: a record too large to send on its own, and
   * the oldest ones when all of them would not fit (ask for fewer with `status`)
   */
  omitted: z.number().int().min(0).optional(),
  ...refusal,
});

export const ClusterStatusRequest = defineMessage("ClusterStatusRequest", {});
export const ClusterStatusReply = defineMessage("ClusterStatusReply", {
  workers: z.array(WorkerInfo),
  jobs_running: z.array(z.string()),
});
