// The dashboard in a real headless Chromium: a cluster with its HTTP server, the page opened before any
// job exists; the job appears, its loss chart gains points while it runs (live events, no reload), the
// generation table before/after with sample answers and the ring's workers show at the end, and two jobs
// overlay on one chart. A screenshot is left in the test's temp folder.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { Page } from "playwright-core";
import { TestCluster } from "../helpers/cluster.js";
import { launchChromium } from "../helpers/browser.js";
import { writeTinyJobData } from "../helpers/tiny_job.js";
import { pngSize } from "../helpers/png_size.js";

const STEPS = 60;

function jobSpec(maxSteps: number, output: string): Record<string, unknown> {
  return {
    model: { init: { config: "model.json", seed: 1 } },
    tokenizer: "byte",
    template: "chatml",
    data: [{ path: "train.jsonl", format: "openai", response_format: "json" }],
    val_size: 6,
    seq_len: 64,
    cache_dir: "cache", // beside the data in the temp folder, never in the checkout
    max_steps: maxSteps,
    global_batch_rows: 4,
    micro_batch_rows: 2,
    lr: 0.003,
    warmup_steps: 2,
    workers: 2,
    eval_every: 10,
    generation_eval: { path: "heldout.jsonl", format: "messages", max_new_tokens: 16 },
    output,
  };
}

const trainPoints = (page: Page) =>
  page.$eval("#loss-chart", (e) => Number((e as HTMLElement).dataset.trainPoints ?? "0"));
const rowStatus = (page: Page, id: string) =>
  page.$eval(`#jobs tr[data-job="${id}"]`, (e) => (e as HTMLElement).dataset.status).catch(() => undefined);

test(
  "the dashboard shows a job live in headless Chromium: progress, loss points, generation table",
  {
    timeout: 420_000,
  },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ringtune-dashboard-"));
    writeTinyJobData(dir);
    const cluster = await TestCluster.start(2, { http: true });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${cluster.coordinator!.http!.port}/`);
      await page.waitForSelector("#connection.live", { timeout: 30_000 });

      const submitted = await cluster.submit(jobSpec(STEPS, "first"), dir);
      assert.ok(submitted.ok, submitted.error);
      const id = submitted.id!;
      await page.waitForSelector(`#jobs tr[data-job="${id}"]`, { timeout: 60_000 });

      // Points while the job runs: two readings, the second larger, both taken with the job still running.
      const seen: number[] = [];
      const end = Date.now() + 300_000;
      while (seen.length < 2 && Date.now() < end) {
        const status = await rowStatus(page, id);
        const n = await trainPoints(page);
        if (status !== "running" && status !== "preparing" && status !== "queued" && status !== "waiting") break;
        if (status === "running" && n > 0 && (seen.length === 0 || n > seen[0]!)) seen.push(n);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(seen.length, 2, `the loss chart gained points while the job ran (readings: ${seen.join(", ")})`);

      const rec = await cluster.finished(id, 300_000);
      assert.equal(rec.status, "completed", rec.message);
      await page.waitForFunction(
        ([sel, steps]) => Number((document.querySelector(sel as string) as HTMLElement)?.dataset.trainPoints) === steps,
        ["#loss-chart", STEPS],
        { timeout: 30_000 },
      );
      await page.waitForSelector('#generation-table[data-has-after="true"]', { timeout: 30_000 });
      const generation = await page.$eval("#generation-table", (t) => (t as HTMLElement).innerText);
      for (const task of ["extract/name", "extract/city", "all"]) assert.ok(generation.includes(task), generation);
      const samples = await page.$$eval("#generation-samples tbody tr", (rows) => rows.length);
      assert.ok(samples > 0, "sample answers are shown");
      await page.waitForFunction(() => document.querySelectorAll("#ring-workers tbody tr").length === 2, undefined, {
        timeout: 10_000,
      });
      const ring = await page.$eval("#ring-workers", (t) => (t as HTMLElement).innerText);
      assert.match(ring, /w0[\s\S]*\d+ ms[\s\S]*w1/);
      // the ring's size over time, from the job record
      assert.equal(await page.$eval("#ring-sizes", (p) => (p as HTMLElement).innerText), "ring size: 2 from step 0");
      await page.waitForSelector(`#jobs tr[data-job="${id}"][data-status="completed"]`, { timeout: 30_000 });

      const shot = path.join(dir, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(pngSize(shot).width >= 1280);
      console.log(`dashboard screenshot: ${shot}`);

      // A second job, both ticked for comparison: one loss chart holds both jobs' curves.
      const second = await cluster.run(jobSpec(5, "second"), dir);
      await page.waitForSelector(`#jobs tr[data-job="${second.id}"]`);
      for (const job of [id, second.id]) await page.check(`#jobs tr[data-job="${job}"] input[type=checkbox]`);
      await page.waitForFunction(
        ([a, b]) => {
          const legend = (document.querySelector("#loss-chart .u-legend") as HTMLElement | null)?.innerText ?? "";
          return legend.includes(`${a} train`) && legend.includes(`${b} train`);
        },
        [id, second.id],
        { timeout: 30_000 },
      );
      await page.check("#log-scale");
      await page.screenshot({ path: path.join(dir, "dashboard-compare.png"), fullPage: true });
      assert.deepEqual(errors, [], "no script errors on the page");
    } finally {
      await browser.close();
      await cluster.stop();
    }
  },
);
