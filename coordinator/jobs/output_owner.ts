// One output folder, one job: a job writes its id into its output folder when it starts, and a later job
// whose `output` holds another job's files is refused at intake (naming the folder and that job), so a
// second run never mixes its model, metrics and checkpoints with the first's or replaces them unasked.
// `overwrite_output: true` takes the folder over: the old job's entries are removed as a whole when the
// new job starts. A job that resumes from a checkpoint inside the folder continues the run written there.
import { constants } from "node:fs";
import { lstat, open, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { JOB_OUTPUT_ENTRIES, finalLayout, outputOwnerFile } from "../../proto/mod.js";
import { writeOutputFileAtomically } from "../../files/output_files.js";

/** An owner record is a few dozen bytes; more is not one. */
const MAX_OWNER_BYTES = 4096;

/** Stands for the writer of a folder with job outputs but no record of the job (an older ringtune's). */
export const UNRECORDED_JOB = "an earlier job (not recorded)";

async function readSmallJson(file: string): Promise<unknown> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_OWNER_BYTES) return undefined;
    return JSON.parse(await fh.readFile("utf8"));
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

function jobOf(value: unknown): string | undefined {
  const job = (value as { job?: unknown } | undefined)?.job;
  return typeof job === "string" && job.length <= 200 ? job : undefined;
}

export interface OutputOwner {
  /** the job that wrote there, or UNRECORDED_JOB */
  job: string;
  /** the job entries found, as named in the folder */
  entries: string[];
}

/** Who wrote the job outputs `output` holds, or undefined when it holds none (or does not exist). */
export async function outputOwner(output: string): Promise<OutputOwner | undefined> {
  let names: string[];
  try {
    if (!(await lstat(output)).isDirectory()) return undefined;
    names = await readdir(output);
  } catch {
    return undefined;
  }
  const entries = JOB_OUTPUT_ENTRIES.filter((e) => names.includes(e));
  if (entries.length === 0) return undefined;
  const job =
    jobOf(await readSmallJson(outputOwnerFile(output))) ??
    jobOf(await readSmallJson(finalLayout(output).info)) ??
    UNRECORDED_JOB;
  return { job, entries };
}

/** Whether `resumeFrom` lies inside `output`: the job continues the run written there. */
export function resumesInside(output: string, resumeFrom: string | undefined): boolean {
  if (resumeFrom === undefined) return false;
  const rel = path.relative(output, resumeFrom);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}

/** The refusal of a job whose output holds `owner`'s files. */
export function outputInUseMessage(output: string, owner: string, entries?: string[]): string {
  const what = entries && entries.length > 0 ? ` (${entries.join(", ")})` : "";
  return (
    `${output} holds the outputs of ${owner === UNRECORDED_JOB ? owner : `job ${owner}`}${what}; ` +
    `choose another output, set overwrite_output: true to replace them, or resume that job with resume_from`
  );
}

/**
 * Makes `output` the job's own as it starts: a folder already its own (a restart) is left as it is; another
 * job's outputs are removed as a whole with `overwrite`, kept when the job resumes from inside the folder,
 * and otherwise refused (another job wrote there after this one was accepted). Then the job's id is recorded.
 */
export async function claimOutput(
  output: string,
  job: string,
  opts: { overwrite: boolean; resumeFrom?: string },
): Promise<{ removed: string[] }> {
  const owner = await outputOwner(output);
  let removed: string[] = [];
  if (owner && owner.job !== job && !resumesInside(output, opts.resumeFrom)) {
    if (!opts.overwrite) throw new Error(`output: ${outputInUseMessage(output, owner.job, owner.entries)}`);
    // rm removes a link itself, never what it points at
    for (const e of owner.entries) await rm(path.join(output, e), { recursive: true, force: true });
    removed = owner.entries;
  }
  if (owner?.job !== job)
    await writeOutputFileAtomically(
      outputOwnerFile(output),
      JSON.stringify({ job, started_at: new Date().toISOString() }) + "\n",
    );
  return { removed };
}
