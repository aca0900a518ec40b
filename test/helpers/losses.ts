// Training losses read back from a job's metrics.jsonl, and their step-by-step comparison between runs.
import assert from "node:assert/strict";
import { readMetrics } from "./cluster.js";

/** step -> training loss, from a job output folder's metrics.jsonl; a step logged twice is an error */
export function lossesByStep(output: string): Map<number, number> {
  const losses = new Map<number, number>();
  for (const m of readMetrics(output)) {
    if (m.loss === undefined) continue;
    assert.ok(!losses.has(m.step), `${output}/metrics.jsonl: step ${m.step} has two training losses`);
    losses.set(m.step, m.loss);
  }
  return losses;
}

/**
 * Asserts that `run` has exactly the steps of `reference` and the same loss at each, within a relative
 * tolerance (a resumed or re-formed ring must reproduce an unbroken run, not merely have one loss per step).
 */
export function assertSameLosses(run: Map<number, number>, reference: Map<number, number>, relTol = 1e-6): void {
  assert.deepEqual([...run.keys()], [...reference.keys()], "the same steps, once each, in order");
  for (const [step, want] of reference) {
    const got = run.get(step)!;
    assert.ok(Math.abs(got - want) <= relTol * Math.abs(want), `step ${step}: loss ${got}, unbroken run ${want}`);
  }
}

/**
 * Asserts a job started twice: first from scratch, then from a checkpoint (a multiple of `saveEvery`) no
 * older than `checkpointStep`, the last one the job had written when its ring broke.
 */
export function assertResumedAtCheckpoint(starts: number[], checkpointStep: number, saveEvery: number): void {
  assert.equal(starts.length, 2, `two starts: ${starts}`);
  assert.equal(starts[0], 0);
  assert.ok(
    starts[1]! >= checkpointStep && starts[1]! % saveEvery === 0,
    `the second start resumes at a checkpoint no older than step ${checkpointStep}, not at ${starts[1]}`,
  );
}
