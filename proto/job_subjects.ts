// Subjects of the control plane for jobs: submission, cancellation, cluster status, and the coordinator's
// commands to one worker. Data-plane and membership subjects are in subjects.ts.
import { SubjectToken } from "./subjects.js";
import type { WorkerCommand } from "./worker_commands.js";

const ROOT = "ringtune";

function token(what: string, value: string): string {
  const r = SubjectToken.safeParse(value);
  if (!r.success) throw new RangeError(`${what} '${value}' ${r.error.issues[0]?.message ?? "is not a subject token"}`);
  return value;
}

export const jobSubjects = {
  /** Request/reply: a job spec in, a job id or an error out. */
  submit: `${ROOT}.job.submit`,
  /** Request/reply: one job's record by id. */
  get: `${ROOT}.job.get`,
  /** Request/reply: every job's record, oldest first. */
  list: `${ROOT}.job.list`,
  /** Request/reply: cancel a job by id. */
  cancel: `${ROOT}.job.cancel`,
  /** Request/reply: the workers the coordinator knows and what they do. */
  clusterStatus: `${ROOT}.cluster.status`,
  /** Published by a coordinator when it starts: workers register again. */
  coordinatorHello: `${ROOT}.coordinator.hello`,
  /** Request/reply from the coordinator to one worker. */
  workerCommand: (workerId: string, command: WorkerCommand) =>
    `${ROOT}.worker.${token("worker id", workerId)}.cmd.${command}`,
  workerCommandAll: (workerId: string) => `${ROOT}.worker.${token("worker id", workerId)}.cmd.*`,
} as const;

/**
 * JetStream KV bucket holding one record per job (key: job id, value: the record as JSON), so a restarted
 * coordinator loses nothing and `nats kv get/watch` show it. Its subject `$KV.<bucket>.<id>` is the
 * job's progress stream.
 */
export const JOBS_BUCKET = "ringtune-jobs";
