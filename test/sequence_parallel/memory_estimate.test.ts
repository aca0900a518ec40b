// The memory estimate of a sequence-parallel job counts a rank's own tokens: its slice of each row of its
// group's share.
import { test } from "node:test";
import assert from "node:assert/strict";
import { estimateJobMemory, microBatchShapes } from "../../spec/job_memory.js";
import { parseSpec } from "../../spec/load.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const spec = (over: Record<string, unknown>) =>
  parseSpec({ model: { init: { config: "m.json" } }, data: [{ path: "d.jsonl" }], ...over }, "t.yaml", "/tmp");

test("a rank of a group of N holds 1/N of each row of its group's rows", () => {
  // 4 workers in 2 groups of 2: 6 rows per step, 3 per group, every rank of a group runs all 3
  assert.deepEqual(microBatchShapes(spec({ workers: 4, sequence_parallel: 2, global_batch_rows: 6 })), [3]);
  const shape = parseHfConfig({ ...TINY_BYTE_LLAMA, max_position_embeddings: 4096 }, "m.json").native;
  const split = estimateJobMemory(
    spec({ workers: 2, sequence_parallel: 2, seq_len: 2048, global_batch_rows: 1, micro_batch_rows: 1 }),
    shape,
  );
  const half = estimateJobMemory(spec({ workers: 1, seq_len: 1024, global_batch_rows: 1, micro_batch_rows: 1 }), shape);
  const whole = estimateJobMemory(
    spec({ workers: 1, seq_len: 2048, global_batch_rows: 1, micro_batch_rows: 1 }),
    shape,
  );
  assert.equal(split.activations, half.activations);
  assert.ok(split.activations < whole.activations);
});
