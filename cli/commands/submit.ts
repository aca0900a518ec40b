// `ringtune submit JOB.yaml`: validates the job file here, sends it to the coordinator, prints the job id;
// --wait follows it to the end.
import path from "node:path";
import type { Command } from "../args.js";
import { UsageError, intFlag, parseFlags } from "../args.js";
import { followToEnd } from "../follow.js";
import { prepareJob } from "../job_client.js";
import { newRequestId, submitWithRetry } from "../submit_retry.js";
import { natsUrl, withNats } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";
import { parseSpec } from "../../spec/load.js";
import { memoryLines } from "../memory_lines.js";

export const submit: Command = {
  name: "submit",
  summary: "submit a job file (YAML or JSON) to the cluster; --wait follows it to the end",
  usage:
    "usage: ringtune submit JOB.yaml [--set KEY=VALUE]... [--wait] [--json] [--request-id ID] [--retry-for S] [--nats URL]\n" +
    "  --set    change one key of the job file for this run (dotted for nested keys: generation_eval.max_new_tokens=32);\n" +
    "           relative paths are taken from the job file's folder, as in the file\n" +
    "  --wait   show progress until the job ends; exit 0 when it completed, 1 when it failed or was canceled\n" +
    "  --json   with --wait: the last line of stdout is the final job record as JSON (progress goes to stderr)\n" +
    "  --request-id  this submission's id (default: a new one, printed on stderr); a submit repeated with the\n" +
    "           same id returns the job the first one created instead of a second job\n" +
    "  --retry-for   seconds to keep retrying, with the same request id, while no coordinator answers (default 0)\n" +
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
        "request-id": { type: "string" },
        "retry-for": { type: "string" },
      },
      true,
    );
    if (positionals.length !== 1) throw new UsageError(`expected one job file, got ${positionals.length}`);
    const file = positionals[0]!;
    const retryForMs = intFlag(values, "retry-for", 0) * 1000;
    if (retryForMs < 0) throw new UsageError(`--retry-for must be 0 or more seconds, got ${values["retry-for"]}`);
    const requestId = values["request-id"] ?? newRequestId();
    const job = { ...prepareJob(file, values.set ?? []), request_id: requestId };
    // On stderr: stdout holds only the id (or JSON) for scripts.
    for (const line of memoryLines(parseSpec(job.spec, file, job.base_dir ?? path.dirname(path.resolve(file)))))
      process.stderr.write(`${line}\n`);
    return withNats(natsUrl(values.nats), natsAuth(values, "client"), async (nc) => {
      process.stderr.write(`request id ${requestId} (repeat it with --request-id to submit this job once)\n`);
      const id = await submitWithRetry(nc, job, retryForMs, (err) =>
        process.stderr.write(`${err.message}; retrying with request id ${requestId}\n`),
      );
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
