// `ringtune submit JOB.yaml`: validates the job file here, sends it to the coordinator, prints the job id;
// --wait follows it to the end.
import path from "node:path";
import type { Command } from "../args.js";
import { UsageError, parseFlags } from "../args.js";
import { followToEnd } from "../follow.js";
import { prepareJob, submitJob } from "../job_client.js";
import { natsUrl, withNats } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";
import { parseSpec } from "../../coordinator/job_spec/load.js";
import { memoryLines } from "../memory_lines.js";

export const submit: Command = {
  name: "submit",
  summary: "submit a job file (YAML or JSON) to the cluster; --wait follows it to the end",
  usage:
    "usage: ringtune submit JOB.yaml [--set KEY=VALUE]... [--wait] [--json] [--nats URL]\n" +
    "  --set    change one key of the job file for this run (dotted for nested keys: generation_eval.max_new_tokens=32);\n" +
    "           relative paths are taken from the job file's folder, as in the file\n" +
    "  --wait   show progress until the job ends; exit 0 when it completed, 1 when it failed or was canceled\n" +
    "  --json   with --wait: the last line of stdout is the final job record as JSON (progress goes to stderr)\n" +
    "  --nats   NATS server (default: $NATS_URL, else nats://127.0.0.1:4222)" +
    "\n" +
    NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      {
        wait: { type: "boolean" },
        json: { type: "boolean" },
        nats: { type: "string" },
        ...natsCredentialFlags,
        set: { type: "string", multiple: true },
      },
      true,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one job file, got ${positionals.length}`);
    const file = positionals[0]!;
    const job = prepareJob(file, values.set ?? []);
    // On stderr: stdout holds only the id (or JSON) for scripts.
    for (const line of memoryLines(parseSpec(job.spec, file, job.base_dir ?? path.dirname(path.resolve(file)))))
      process.stderr.write(`${line}\n`);
    return withNats(natsUrl(values.nats), natsAuth(values, "client"), async (nc) => {
      const id = await submitJob(nc, job);
      // With --json stdout holds only JSON; the id is in the record, and stderr tells the person.
      if (values.json) process.stderr.write(`submitted ${file} as job ${id}\n`);
      else console.log(id);
      if (!values.wait) {
        if (values.json) process.stdout.write(`${JSON.stringify({ id })}\n`);
        return 0;
      }
      return followToEnd(nc, id, Boolean(values.json));
    });
  },
};
