// One output folder, one job: a job whose output holds another job's files is refused at intake naming the
// folder and that job, unless it overwrites them (removed as a whole when it starts, never mixed) or
// resumes from a checkpoint there; a job already bound for the folder (queued or running) counts too.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { acceptSubmission } from "../../coordinator/jobs/intake.js";
import { claimOutput, UNRECORDED_JOB } from "../../coordinator/jobs/output_owner.js";
import { JobApiRefusal } from "../../proto/mod.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const dir = mkdtempSync(path.join(tmpdir(), "ringtune-owner-"));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
writeFileSync(path.join(dir, "train.jsonl"), JSON.stringify({ text: "hello" }) + "\n");

const spec = (output: string, more: Record<string, unknown> = {}) => ({
  spec: {
    model: { init: { config: "model.json", seed: 1 } },
    tokenizer: "byte",
    data: [{ path: "train.jsonl" }],
    seq_len: 32,
    max_steps: 1,
    global_batch_rows: 1,
    output,
    ...more,
  },
  base_dir: dir,
  source: "job.yaml",
});

async function refusal(req: ReturnType<typeof spec>, claimed?: string): Promise<string> {
  try {
    await acceptSubmission(req, [], undefined, () => claimed);
  } catch (err) {
    assert.ok(err instanceof JobApiRefusal);
    assert.equal(err.problems[0]!.code, "output_in_use");
    assert.equal(err.problems[0]!.key, "output");
    return err.problems[0]!.message;
  }
  assert.fail("accepted");
}

test("an output folder another job wrote is refused naming the folder and the job", async () => {
  const out = path.join(dir, "run-a");
  mkdirSync(out);
  await claimOutput(out, "job-first", { overwrite: false });
  writeFileSync(path.join(out, "metrics.jsonl"), "");
  const message = await refusal(spec("run-a"));
  assert.match(message, new RegExp(`job\\.yaml: output: ${out} holds the outputs of job job-first`));
  assert.match(message, /overwrite_output: true/);
  // the folder of a job of an older ringtune (no record of the job): still refused, said so
  const old = path.join(dir, "run-old");
  mkdirSync(path.join(old, "checkpoints"), { recursive: true });
  assert.ok((await refusal(spec("run-old"))).includes(`holds the outputs of ${UNRECORDED_JOB} (checkpoints)`));
});

test("a folder a queued or running job is bound for is refused, naming that job", async () => {
  assert.match(await refusal(spec("run-new"), "job-queued"), /run-new holds the outputs of job job-queued/);
});

test("an empty or unrelated folder is accepted", async () => {
  mkdirSync(path.join(dir, "mine"));
  writeFileSync(path.join(dir, "mine", "notes.txt"), "mine");
  const job = await acceptSubmission(spec("mine"));
  assert.equal(job.output, path.join(dir, "mine"));
});

test("overwrite_output replaces the earlier job's outputs as a whole when the job starts", async () => {
  const out = path.join(dir, "run-b");
  mkdirSync(out);
  await claimOutput(out, "job-old", { overwrite: false });
  mkdirSync(path.join(out, "checkpoints", "step-000200"), { recursive: true });
  mkdirSync(path.join(out, "final"));
  writeFileSync(path.join(out, "metrics.jsonl"), "{}\n");
  writeFileSync(path.join(out, "notes.txt"), "the user's own file");
  const job = await acceptSubmission(spec("run-b", { overwrite_output: true }));
  const { removed } = await claimOutput(out, job.id, { overwrite: true });
  assert.deepEqual(removed.sort(), ["checkpoints", "final", "metrics.jsonl", "ringtune_job.json"]);
  assert.deepEqual(readdirSync(out).sort(), ["notes.txt", "ringtune_job.json"]);
  // the same job starting again (a requeue) keeps what it wrote
  mkdirSync(path.join(out, "checkpoints"));
  assert.deepEqual((await claimOutput(out, job.id, { overwrite: true })).removed, []);
  assert.ok(existsSync(path.join(out, "checkpoints")));
});

test("a job resuming from a checkpoint inside the folder continues the run there", async () => {
  const out = path.join(dir, "run-c");
  mkdirSync(out);
  await claimOutput(out, "job-earlier", { overwrite: false });
  mkdirSync(path.join(out, "checkpoints", "step-000005"), { recursive: true });
  const resume = path.join(out, "checkpoints", "step-000005");
  writeFileSync(path.join(resume, "trainer_state.json"), "{}");
  await acceptSubmission(spec("run-c", { resume_from: resume }));
  await assert.rejects(claimOutput(out, "job-other", { overwrite: false }), /holds the outputs of job job-earlier/);
  assert.deepEqual((await claimOutput(out, "job-later", { overwrite: false, resumeFrom: resume })).removed, []);
  assert.ok(existsSync(resume));
});
