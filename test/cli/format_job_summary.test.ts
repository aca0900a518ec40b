// The summary `make demo` prints from the final job record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatJobSummary } from "../../cli/format_job_summary.js";
import { generationEvalRows } from "../../cli/format_generation_eval.js";
import type { EvalSample } from "../../proto/mod.js";

const score = (count: number, exact_match: number, json_valid: number, samples: EvalSample[] = []) => ({
  count,
  exact_match,
  json_valid,
  samples,
});

const record = {
  id: "job-1",
  status: "completed",
  steps: 300,
  train_loss: { first: 5.5, last: 0.42 },
  val_loss: 0.61,
  output: "/repo/runs/job-1",
  generation_eval: {
    before: { overall: score(20, 0, 0.05), tasks: { "extract/json": score(20, 0, 0.05) } },
    after: { overall: score(20, 0.85, 1), tasks: { "extract/json": score(20, 0.85, 1) } },
  },
};

test("the summary shows losses, a before/after table per task_type and the output folder", () => {
  const text = formatJobSummary(record);
  assert.match(text, /job job-1: completed after 300 steps/);
  assert.match(text, /train loss: 5\.5000 -> 0\.4200/);
  assert.match(text, /val loss: {3}0\.6100/);
  assert.match(text, /TASK_TYPE\s+PROMPTS\s+EXACT BEFORE\s+EXACT AFTER\s+JSON BEFORE\s+JSON AFTER/);
  assert.match(text, /extract\/json\s+20\s+0\.0%\s+85\.0%\s+5\.0%\s+100\.0%/);
  assert.match(text, /outputs: \/repo\/runs\/job-1/);
});

test("the coordinator's report shape: tasks and overall (as 'all', last), with sample answers", () => {
  const ev = {
    before: {
      overall: score(40, 0, 0.1),
      tasks: { "extract/order": score(20, 0, 0.1), "extract/person": score(20, 0, 0.1) },
      max_new_tokens: 64,
    },
    after: {
      overall: score(40, 0.5, 1),
      tasks: {
        "extract/order": score(20, 0.25, 1),
        "extract/person": score(20, 0.75, 1, [
          { prompt: "Ann lives in Oslo.", expected: '{"name":"Ann"}', got: '{"name":"Ann"}' },
        ]),
      },
    },
  };
  assert.deepEqual(generationEvalRows(ev), [
    ["extract/order", "20", "0.0%", "25.0%", "10.0%", "100.0%"],
    ["extract/person", "20", "0.0%", "75.0%", "10.0%", "100.0%"],
    ["all", "40", "0.0%", "50.0%", "10.0%", "100.0%"],
  ]);
  const text = formatJobSummary({ ...record, generation_eval: ev });
  assert.match(
    text,
    /\[extract\/person\] Ann lives in Oslo\.\n {4}expected: \{"name":"Ann"\}\n {4}got: {6}\{"name":"Ann"\}/,
  );
});

test("a report with only the after part shows '-' for before", () => {
  assert.deepEqual(generationEvalRows({ after: record.generation_eval.after }), [
    ["extract/json", "20", "-", "85.0%", "-", "100.0%"],
    ["all", "20", "-", "85.0%", "-", "100.0%"],
  ]);
});

test("a generation_eval not in the report's shape is printed as JSON, with what is wrong, rather than dropped", () => {
  const text = formatJobSummary({ ...record, generation_eval: { score: 3 } });
  assert.match(text, /"score": 3/);
  assert.match(text, /not a report this version reads/);
  const missingCount = formatJobSummary({
    ...record,
    generation_eval: { after: { overall: { exact_match: 1 }, tasks: {} } },
  });
  assert.match(missingCount, /after\.overall\.count/);
});
