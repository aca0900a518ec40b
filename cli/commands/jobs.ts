// `ringtune jobs`: every job the coordinator has recorded, oldest first.
import type { Command } from "../args.js";
import { parseFlags } from "../args.js";
import { listJobs, openJobs, type JobRecordBody } from "../../proto/job_records.js";
import { recordToJson } from "../job_client.js";
import { natsUrl, withNats } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";
import { formatLoss } from "../progress_bar.js";
import { formatTable } from "../table.js";

export function formatJobsTable(records: JobRecordBody[]): string {
  if (records.length === 0) return "no jobs yet ('ringtune submit JOB.yaml' submits one)";
  return formatTable(
    ["ID", "STATUS", "STEP", "TOTAL", "LOSS", "OUTPUT"],
    records.map((r) => [
      r.id,
      r.status,
      String(r.step),
      String(r.total_steps),
      formatLoss(r.train_loss.last),
      r.output,
    ]),
  );
}

export const jobs: Command = {
  name: "jobs",
  summary: "list jobs: id, status, step, total steps, last train loss, output folder",
  usage:
    "usage: ringtune jobs [--json] [--nats URL]\n  --json   one job record per line" + "\n" + NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, {
      json: { type: "boolean" },
      nats: { type: "string" },
      ...natsCredentialFlags,
    });
    const records = await withNats(natsUrl(values.nats), natsAuth(values, "client"), async (nc) =>
      listJobs(nc, await openJobs(nc)),
    );
    if (values.json) for (const r of records) process.stdout.write(`${JSON.stringify(recordToJson(r))}\n`);
    else console.log(formatJobsTable(records));
    return 0;
  },
};
