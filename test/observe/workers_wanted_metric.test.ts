// ringtune_workers_wanted, what KEDA sizes the GPU worker pool by (deploy/k8s/autoscaling.yaml): the workers
// the unfinished jobs ask for together, read through the Prometheus text format a scraper reads.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { JobStatus } from "../../proto/mod.js";
import type { Job } from "../../coordinator/jobs/store.js";
import { CoordinatorMetrics, workersWanted } from "../../coordinator/observe/coordinator_metrics.js";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus_text.js";

const job = (status: JobStatus, workers: unknown): Job => ({ status, spec: { workers } }) as unknown as Job;

test("workers wanted: a fixed count, an elastic job's max, one for a spec without a count", () => {
  assert.equal(workersWanted({ workers: 3 }), 3);
  assert.equal(workersWanted({ workers: { min: 1, max: 4 } }), 4);
  assert.equal(workersWanted({}), 1);
  assert.equal(workersWanted({ workers: "many" }), 1);
});

test("ringtune_workers_wanted sums the queued, waiting, preparing and running jobs, not the finished ones", async () => {
  let jobs: Job[] = [
    job("queued", 2),
    job("waiting", { min: 1, max: 3 }),
    job("preparing", 1),
    job("running", 4),
    job("completed", 8),
    job("failed", 8),
    job("canceled", 8),
  ];
  const metrics = new CoordinatorMetrics({ jobs: () => jobs, workers: () => [] });
  // this one metric as a scrape shows it (the process metrics of a registry this young read NaN)
  const scrape = async () =>
    sampleValue(
      parsePrometheusText(await metrics.registry.getSingleMetricAsString("ringtune_workers_wanted")),
      "ringtune_workers_wanted",
    );
  assert.equal(await scrape(), 2 + 3 + 1 + 4);
  jobs = [job("completed", 2)];
  assert.equal(await scrape(), 0, "nothing left to run wants no workers (KEDA scales to its minimum)");
});
