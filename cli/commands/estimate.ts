// `ringtune estimate --spec JOB.yaml`: what one rank of a job needs in memory, before anything runs.
import path from "node:path";
import { parseSpec } from "../../spec/load.js";
import { estimateJobMemory, formatEstimate, readModelShape } from "../../spec/job_memory.js";
import { intFlag, parseFlags, requireFlag, UsageError, type Command } from "../args.js";
import { prepareJob } from "../job_client.js";

export const estimate: Command = {
  name: "estimate",
  summary: "memory one rank of a job needs: parameters, gradients, AdamW moments, activations",
  usage:
    "usage: ringtune estimate --spec JOB.yaml [--set KEY=VALUE]... [--threads N] [--json]\n" +
    "  --set      change keys for this estimate (method=lora, lora.rank=64, seq_len=4096, model.init.config=...)\n" +
    "  --threads  the worker's threads (each has its own attention tiles); default 16\n" +
    "  --json     the estimate as one JSON object (bytes)",
  async run(argv) {
    const { values } = parseFlags(argv, {
      spec: { type: "string" },
      set: { type: "string", multiple: true },
      threads: { type: "string" },
      json: { type: "boolean" },
    });
    const file = requireFlag(values, "spec");
    const job = prepareJob(file, values.set ?? []);
    const spec = parseSpec(job.spec, file, job.base_dir ?? path.dirname(path.resolve(file)));
    const threads = values.threads === undefined ? undefined : intFlag(values, "threads");
    if (threads !== undefined && threads < 1) throw new UsageError(`--threads must be positive, got ${threads}`);
    const e = estimateJobMemory(spec, readModelShape(spec), threads);
    if (values.json) console.log(JSON.stringify(e));
    else for (const line of formatEstimate(e)) console.log(line);
    return 0;
  },
};
