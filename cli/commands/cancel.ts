// `ringtune cancel ID`: asks the coordinator to stop a job; the job ends as 'canceled' once its workers stop.
import type { Command } from "../args.js";
import { UsageError, parseFlags } from "../args.js";
import { cancelJob } from "../job_client.js";
import { natsUrl, withNats } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";

export const cancel: Command = {
  name: "cancel",
  summary: "cancel a job",
  usage: "usage: ringtune cancel ID [--nats URL]" + "\n" + NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { nats: { type: "string" }, ...natsCredentialFlags }, true);
    if (positionals.length !== 1) throw new UsageError(`expected one job id, got ${positionals.length}`);
    const id = positionals[0]!;
    await withNats(natsUrl(values.nats), natsAuth(values, "client"), (nc) => cancelJob(nc, id));
    console.log(`cancel requested for job ${id} ('ringtune watch ${id}' shows when it has stopped)`);
    return 0;
  },
};
