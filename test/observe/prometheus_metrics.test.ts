// /metrics of a live coordinator and of each worker, read over HTTP after a real job and parsed by the
// Prometheus text format's rules; and the job's loss.png, written at its end, has the plot's size.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { PLOT_HEIGHT, PLOT_WIDTH } from "../../plot/loss_svg.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { pngSize } from "../helpers/png_size.js";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus_text.js";

async function scrape(port: number): Promise<{ contentType: string; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  return { contentType: r.headers.get("content-type") ?? "", text: await r.text() };
}

test("the format reader refuses what a Prometheus scraper refuses", () => {
  const good = '# HELP a_total things\n# TYPE a_total counter\na_total{job="x\\"y"} 3\n';
  assert.equal(sampleValue(parsePrometheusText(good), "a_total", { job: 'x"y' }), 3);
  const bad: [string, RegExp][] = [
    ["a-b 1\n", /bad metric name|not a sample/],
    ["a{job=x} 1\n", /not quoted/],
    ['a{job="x"} one\n', /not a value/],
    ["a 1\n# TYPE a counter\n", /after its samples/],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /not increasing/],
    ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /!= _count/],
    ["a 1\na 2\n", /twice/],
  ];
  for (const [text, why] of bad) assert.throws(() => parsePrometheusText(text), why, JSON.stringify(text));
});

test(
  "after a 2-worker job, coordinator and worker /metrics count its steps, tokens, losses and all-reduce",
  { timeout: 240_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2, { http: true });
    try {
      const steps = 6;
      const rec = await cluster.run({ ...baseSpec, workers: 2, max_steps: steps, eval_every: 3, output: "out" }, dir);

      const coordinator = await scrape(cluster.coordinator!.http!.port);
      assert.match(coordinator.contentType, /^text\/plain; version=0\.0\.4/);
      const c = parsePrometheusText(coordinator.text);
      const job = { job: rec.id };
      assert.equal(sampleValue(c, "ringtune_steps_total", job), steps);
      assert.ok(sampleValue(c, "ringtune_tokens_total", job) > 0);
      assert.ok(Math.abs(sampleValue(c, "ringtune_train_loss", job) - rec.train_loss.last!) < 1e-9);
      assert.ok(Math.abs(sampleValue(c, "ringtune_val_loss", job) - rec.val_loss!) < 1e-9);
      for (const task of Object.keys(rec.val_loss_by_task ?? {}))
        assert.ok(Number.isFinite(sampleValue(c, "ringtune_val_loss_by_task", { ...job, task })));
      assert.equal(sampleValue(c, "ringtune_step_seconds_count"), steps);
      assert.equal(sampleValue(c, "ringtune_allreduce_wait_seconds_count"), steps);
      assert.equal(sampleValue(c, "ringtune_jobs", { status: "completed" }), 1);
      assert.equal(sampleValue(c, "ringtune_jobs", { status: "running" }), 0);
      assert.equal(sampleValue(c, "ringtune_workers", { state: "idle" }), 2);
      for (const w of ["w0", "w1"]) {
        assert.ok(sampleValue(c, "ringtune_worker_heartbeat_age_seconds", { worker: w }) >= 0);
        assert.ok(sampleValue(c, "ringtune_worker_last_step_seconds", { worker: w }) > 0);
      }

      for (const worker of cluster.workers) {
        const w = parsePrometheusText((await scrape(worker.http!.port)).text);
        const labels = { worker: worker.id, job: rec.id };
        assert.equal(sampleValue(w, "ringtune_worker_steps_total", labels), steps);
        assert.ok(sampleValue(w, "ringtune_worker_tokens_total", labels) > 0);
        assert.ok(Number.isFinite(sampleValue(w, "ringtune_worker_loss", labels)));
        assert.equal(sampleValue(w, "ringtune_worker_step_seconds_count", { worker: worker.id }), steps);
        assert.equal(sampleValue(w, "ringtune_worker_allreduce_wait_seconds_count", { worker: worker.id }), steps);
        assert.ok(sampleValue(w, "ringtune_worker_allreduce_bytes_total", { worker: worker.id }) > 0);
        assert.equal(sampleValue(w, "ringtune_worker_state", { worker: worker.id, state: "idle" }), 1);
        assert.equal(sampleValue(w, "ringtune_worker_state", { worker: worker.id, state: "busy" }), 0);
      }

      // The coordinator's JSON log has a line per step naming the job, the step and the ring's workers.
      const stepLines = cluster.coordinatorLog.filter((l) => l.msg === "step" && l.job === rec.id);
      assert.deepEqual(
        stepLines.map((l) => l.step),
        Array.from({ length: steps }, (_, i) => i + 1),
      );
      assert.deepEqual(stepLines[0]!.workers, ["w0", "w1"]);

      const png = path.join(rec.output, "loss.png");
      assert.ok(existsSync(png), `${png} written at the job's end`);
      assert.ok(existsSync(path.join(rec.output, "loss.svg")));
      assert.deepEqual(pngSize(png), { width: PLOT_WIDTH, height: PLOT_HEIGHT });
    } finally {
      await cluster.stop();
    }
  },
);
