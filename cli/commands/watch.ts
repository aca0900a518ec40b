// `ringtune watch ID`: follows a job (already running or finished) with the same progress as submit --wait.
import type { Command } from "../args.js";
import { UsageError, parseFlags } from "../args.js";
import { followToEnd } from "../follow.js";
import { getJob, openJobs } from "../../proto/job_records.js";
import { JobNotFoundError } from "../job_client.js";
import { natsUrl, withNats } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";

export const watch: Command = {
  name: "watch",
  summary: "follow a job until it ends (progress, then its final status)",
  usage:
    "usage: ringtune watch ID [--json] [--nats URL]\n  --json   the last line of stdout is the final job record as JSON" +
    "\n" +
    NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      { json: { type: "boolean" }, nats: { type: "string" }, ...natsCredentialFlags },
      true,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one job id, got ${positionals.length}`);
    const id = positionals[0]!;
    return withNats(natsUrl(values.nats), natsAuth(values, "client"), async (nc) => {
      // A watch on a key that never existed would wait forever: check first.
      if (!(await getJob(await openJobs(nc), id)))
        throw new JobNotFoundError(`no job '${id}' ('ringtune jobs' lists them)`);
      return followToEnd(nc, id, Boolean(values.json));
    });
  },
};
