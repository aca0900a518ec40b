// Progress formatting: ETA, tokens/s, the bar line, TTY redraws and plain periodic lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { JobProgress, estimateEtaS, formatEta, formatProgressLine, formatTokensPerS } from "../../cli/progress_bar.js";
import type { JobRecordBody } from "../../cli/job_client.js";

function record(over: Partial<JobRecordBody>): JobRecordBody {
  return {
    id: "job-1",
    status: "running",
    spec: {},
    base_dir: "/",
    created_at: "",
    updated_at: "",
    step: 0,
    total_steps: 100,
    train_loss: {},
    output: "/runs/job-1",
    workers: [],
    ...over,
  };
}

function sink(isTTY: boolean) {
  const out: string[] = [];
  return { out, stream: { isTTY, write: (s: string) => out.push(s) } };
}

test("ETA is shown as seconds, minutes+seconds or hours+minutes; unknown as --", () => {
  assert.equal(formatEta(9.4), "9s");
  assert.equal(formatEta(65), "1m05s");
  assert.equal(formatEta(3600 + 7 * 60 + 30), "1h07m");
  assert.equal(formatEta(undefined), "--");
  assert.equal(formatEta(Infinity), "--");
  assert.equal(formatEta(-1), "--");
});

test("tokens/s is scaled to k and M", () => {
  assert.equal(formatTokensPerS(812.4), "812 tok/s");
  assert.equal(formatTokensPerS(12_345), "12.3k tok/s");
  assert.equal(formatTokensPerS(1_200_000), "1.20M tok/s");
  assert.equal(formatTokensPerS(undefined), "-- tok/s");
});

test("ETA is estimated from the step rate seen since the first observation", () => {
  assert.equal(estimateEtaS(10, 100, { step: 0, ms: 0 }, 5_000), 45); // 0.5 s/step, 90 steps left
  assert.equal(estimateEtaS(0, 100, { step: 0, ms: 0 }, 5_000), undefined, "no step has passed yet");
  assert.equal(estimateEtaS(100, 100, { step: 0, ms: 0 }, 5_000), 0);
});

test("the progress line has step/total, percent, loss, lr, tokens/s and ETA", () => {
  const line = formatProgressLine(
    record({ step: 25, total_steps: 100, train_loss: { first: 3, last: 1.23456 }, lr: 3e-4, tokens_per_s: 12_345 }),
    65,
  );
  assert.equal(line, "[#####...............] 25/100   25%  loss 1.2346  lr 3.00e-4  12.3k tok/s  ETA 1m05s");
});

test("on a TTY the bar is redrawn in place and status changes are whole lines", () => {
  const { out, stream } = sink(true);
  const p = new JobProgress(stream, { now: () => 0 });
  p.update(record({ status: "waiting", message: "no workers: need 2, have 0" }));
  p.update(record({ status: "waiting", message: "no workers: need 2, have 0" })); // same: printed once
  p.update(record({ step: 1, eta_s: 10 }));
  p.update(record({ step: 2, eta_s: 9 }));
  p.update(record({ status: "completed", step: 100, train_loss: { first: 3, last: 1 }, val_loss: 1.5 }));
  // The bar redraws its line with a carriage return and the ANSI "erase line" sequence.
  /* eslint-disable no-control-regex */
  const text = out.join("");
  assert.equal(text.match(/waiting: no workers/g)?.length, 1);
  assert.match(text, /\r\x1b\[K\[.*\] 2\/100 .* ETA 9s/);
  assert.match(
    text,
    /\r\x1b\[Kjob job-1 completed: 100 steps, train loss 3\.0000 -> 1\.0000, val loss 1\.5000; output: \/runs\/job-1\n$/,
  );
  /* eslint-enable no-control-regex */
});

test("off a TTY progress is a plain line at most every interval, and no carriage returns", () => {
  const { out, stream } = sink(false);
  let now = 0;
  const p = new JobProgress(stream, { now: () => now, plainIntervalMs: 10_000 });
  for (let step = 1; step <= 100; step++) {
    now = step * 1_000; // one step a second: steps 1, 11, ..., 91, and the last
    p.update(record({ step }));
  }
  p.update(record({ status: "failed", step: 100, message: "worker-1 lost" }));
  const text = out.join("");
  assert.ok(!text.includes("\r"));
  const progress = out.filter((l) => l.startsWith("["));
  assert.equal(progress.length, 11, progress.join(""));
  assert.match(progress[0]!, /^\[\.+\] 1\/100/);
  assert.match(progress[1]!, /^\[#*\.+\] 11\/100/);
  assert.match(progress[10]!, /^\[#+\] 100\/100/);
  assert.match(out[out.length - 1]!, /^job job-1 failed at step 100\/100: worker-1 lost\n$/);
});
