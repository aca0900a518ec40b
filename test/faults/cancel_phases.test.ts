// Cancel reaches data preparation: a job still reading and tokenizing a large dataset is canceled within
// moments (its threads are terminated, not left reading), and the cluster takes the next job as usual.
import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import path from "node:path";
import { test } from "node:test";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";

/** About 30 MB of chat records: seconds of preparation on any machine, written in well under one. */
async function largeDataset(file: string, records: number): Promise<void> {
  const out = createWriteStream(file);
  const line = (i: number) =>
    JSON.stringify({
      messages: [
        { role: "user", content: `question ${i}: ${"lorem ipsum ".repeat(8)}` },
        { role: "assistant", content: `answer ${i}: ${"dolor sit amet ".repeat(8)}` },
      ],
    }) + "\n";
  for (let i = 0; i < records; i++) if (!out.write(line(i))) await once(out, "drain");
  out.end();
  await once(out, "finish");
}

test("cancel during data preparation stops it within seconds; the next job runs", { timeout: 180_000 }, async () => {
  const { dir, baseSpec } = trainingFixture();
  await largeDataset(path.join(dir, "large.jsonl"), 120_000);
  const cluster = await TestCluster.start(1);
  try {
    const reply = await cluster.submit(
      { ...baseSpec, data: [{ path: "large.jsonl" }], workers: 1, max_steps: 2, output: "large" },
      dir,
    );
    assert.ok(reply.ok, reply.error);
    await cluster.waitFor(async () => (await cluster.record(reply.id!))?.status === "preparing", "preparing");
    await new Promise((r) => setTimeout(r, 500)); // well inside the reading
    const asked = Date.now();
    assert.ok((await cluster.cancel(reply.id!)).ok);
    const rec = await cluster.finished(reply.id!, 20_000);
    const tookMs = Date.now() - asked;
    assert.equal(rec.status, "canceled", rec.message);
    assert.ok(tookMs < 5000, `cancel took ${tookMs} ms`);
    const next = await cluster.run({ ...baseSpec, workers: 1, max_steps: 2, output: "next" }, dir);
    assert.equal(next.status, "completed");
  } finally {
    await cluster.stop();
  }
});
