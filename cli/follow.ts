// Following a job to its end, shared by `submit --wait` and `watch`: progress on stderr, and with --json
// the final record as the last line of stdout, so a script can parse stdout and still see progress.
import type { NatsConnection } from "@nats-io/transport-node";
import { followJob, openJobs, type JobRecordBody } from "../proto/job_records.js";
import { recordToJson } from "./job_client.js";
import { JobProgress } from "./progress_bar.js";

/** Exit status for a finished job: 0 only when it completed. */
export function exitCodeFor(record: JobRecordBody): number {
  return record.status === "completed" ? 0 : 1;
}

export async function followToEnd(nc: NatsConnection, id: string, json: boolean): Promise<number> {
  const kv = await openJobs(nc);
  const progress = new JobProgress(process.stderr);
  const final = await followJob(nc, kv, id, (r) => progress.update(r));
  progress.end();
  if (json) process.stdout.write(`${JSON.stringify(recordToJson(final))}\n`);
  return exitCodeFor(final);
}
