// Cancel interrupts a running step: the native step stops at its next layer, and the worker reports idle
// long before a whole step could have finished; the next job's assign reaches the worker only after the
// interrupted native work has stopped (the worker's own log orders the two).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { TestCluster, trainingFixture, type LogLine } from "../helpers/cluster.js";
import { decodeMessage, STOPPING_ACTIVITY, subjects, WorkerHeartbeat } from "../../proto/mod.js";
import { Worker } from "../../worker/main.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

/** Many thin layers: a step takes seconds, each layer a small part of it, so a cancel has a layer edge soon. */
const LONG_STEP_LLAMA = {
  ...TINY_BYTE_LLAMA,
  hidden_size: 192,
  intermediate_size: 768,
  num_hidden_layers: 24,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  max_position_embeddings: 1024,
};

interface Beat {
  at: number;
  state: string;
  activity?: string;
}

function stepMs(output: string, step: number): number {
  const lines = readFileSync(path.join(output, "metrics.jsonl"), "utf8").split("\n").filter(Boolean);
  const line = lines.map((l) => JSON.parse(l) as { step: number; step_ms?: number }).find((m) => m.step === step);
  assert.ok(line?.step_ms, `metrics.jsonl has step ${step} with its step_ms`);
  return line.step_ms;
}

test(
  "cancel mid-step: the worker reports idle in far less than a step, and the next job starts after the old native work stopped",
  { timeout: 300_000 },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "long_step_model.json"), JSON.stringify(LONG_STEP_LLAMA));
    // Heartbeats every 100 ms: the idle report then follows the worker's state closely, whatever a step takes.
    const cluster = await TestCluster.start(0, { timing: { heartbeatMs: 100 } });
    const lines: LogLine[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
    const worker = await Worker.start({ natsUrl: cluster.server.url, id: "w-long", log });
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 1, "the worker to register");
      const beats: Beat[] = [];
      cluster.client.subscribe(subjects.workerHeartbeat("w-long"), {
        callback: (_err, msg) => {
          const hb = decodeMessage(WorkerHeartbeat, msg.data);
          beats.push({ at: Date.now(), state: hb.state, activity: hb.activity });
        },
      });
      const reply = await cluster.submit(
        {
          ...baseSpec,
          model: { init: { config: "long_step_model.json", seed: 1 } },
          workers: 1,
          seq_len: 512,
          global_batch_rows: 4,
          micro_batch_rows: 2,
          activation_checkpointing: true,
          max_steps: 1000,
          eval_every: 1_000_000,
          save_every: 1_000_000,
          checksum_every: 0,
          output: "long",
        },
        dir,
      );
      assert.ok(reply.ok, reply.error);
      const id = reply.id!;
      await cluster.waitFor(async () => ((await cluster.record(id))?.step ?? 0) >= 2, "step 2", 240_000);
      // A whole step, measured under the same load as what follows; step 3 is under way now.
      const wholeStepMs = stepMs(path.join(dir, "long"), 2);
      const canceledAt = Date.now();
      const cancel = await cluster.cancel(id);
      assert.ok(cancel.ok, cancel.error);
      await cluster.waitFor(
        async () => beats.some((b) => b.at > canceledAt && b.state === "idle"),
        "the worker to report idle",
        240_000,
      );
      const idleAfterMs = beats.find((b) => b.at > canceledAt && b.state === "idle")!.at - canceledAt;
      t.diagnostic(`idle ${idleAfterMs} ms after the cancel; a whole step took ${Math.round(wholeStepMs)} ms`);
      assert.ok(
        idleAfterMs < wholeStepMs / 2,
        `idle ${idleAfterMs} ms after the cancel; a whole step takes ${wholeStepMs} ms`,
      );
      const canceled = await cluster.finished(id);
      assert.equal(canceled.status, "canceled", canceled.message);
      assert.ok(
        lines.some((l) => l.msg === "interrupting the running command" && l.job === id),
        "the release interrupted the step",
      );

      // A job right after: its assign must come after the old step's native work stopped.
      const next = await cluster.run({ ...baseSpec, workers: 1, max_steps: 2, output: "next" }, dir);
      const stopped = lines.findIndex((l) => l.msg === "interrupted work stopped" && l.job === id);
      const assigned = lines.findIndex((l) => l.msg === "assigned" && l.job === next.id);
      assert.ok(stopped >= 0, "the worker logged the end of the interrupted work");
      assert.ok(assigned > stopped, `the next job was assigned (line ${assigned}) before line ${stopped}`);
      // While it was stopping it never said it was idle.
      assert.ok(
        !beats.some((b) => b.state === "idle" && b.activity === STOPPING_ACTIVITY),
        "a heartbeat said idle while the interrupted step was still stopping",
      );
    } finally {
      await worker.close();
      await cluster.stop();
    }
  },
);
