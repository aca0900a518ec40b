// A job's spec as the coordinator may run it: parsed, its LLaMA-Factory datasets read from inside the
// roots, every path confined. Checked once per job (a spec with many data entries takes a while), with the
// event loop let run between slices, so lease renewals and requests are never held up by it.
import type { PathRoots } from "../../files/path_roots.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { parseSpec } from "../../spec/load.js";
import { confinementProblems } from "./intake.js";
import type { Job } from "./store.js";

export type CheckedSpec = { spec: JobSpec } | { problem: string };

export async function checkedJobSpec(job: Job, roots: PathRoots | undefined): Promise<CheckedSpec> {
  const where = job.source ?? job.id;
  try {
    await new Promise((r) => setImmediate(r));
    const spec = parseSpec(job.spec, where, job.base_dir, roots);
    const problems = roots ? await confinementProblems(spec, roots, where) : [];
    return problems.length > 0 ? { problem: problems[0]!.message } : { spec };
  } catch (err) {
    return { problem: (err as Error).message };
  }
}
