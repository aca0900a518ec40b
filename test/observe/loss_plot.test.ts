// The loss plot: curves read from metrics.jsonl, drawn as SVG, rasterised to PNG without a browser, and
// `ringtune plot` over one run or several.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { lossSeriesOfLines, smooth } from "../../plot/loss_series.js";
import { lossPlotSvg, PLOT_HEIGHT, PLOT_WIDTH } from "../../plot/loss_svg.js";
import { logTicks } from "../../plot/axis_ticks.js";
import { pngSize } from "../helpers/png_size.js";
import { runRingtune } from "../helpers/processes.js";

const LINES = [
  { step: 1, loss: 4, lr: 0.001 },
  { step: 2, loss: 3 },
  { step: 2, val_loss: 3.5, val_loss_by_task: { "extract/name": 3.2, "math/add": 3.8 } },
  { step: 2, event: "switch_to_lora" },
  { step: 3, loss: 2 },
  { step: 4, loss: 1 },
  { step: 4, val_loss: 2.5, val_loss_by_task: { "extract/name": 2.0, "math/add": 3.0 } },
];

function runDir(name: string, lines: object[]): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), "ringtune-plot-")), name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "metrics.jsonl"), lines.map((l) => JSON.stringify(l) + "\n").join(""));
  return dir;
}

test("metric lines become train, validation and per-task validation curves", () => {
  const s = lossSeriesOfLines("run", LINES);
  assert.deepEqual(s.train, [
    [1, 4],
    [2, 3],
    [3, 2],
    [4, 1],
  ]);
  assert.deepEqual(s.val, [
    [2, 3.5],
    [4, 2.5],
  ]);
  assert.deepEqual(s.valByTask["math/add"], [
    [2, 3.8],
    [4, 3.0],
  ]);
  // the bias-corrected moving average starts at the first value and lags behind a falling curve
  const sm = smooth(s.train);
  assert.equal(sm[0]![1], 4);
  assert.ok(sm[3]![1] > 1 && sm[3]![1] < 4);
});

test("the SVG draws a path per curve with a legend entry naming each task; log scale ticks are powers of ten", () => {
  const svg = lossPlotSvg([lossSeriesOfLines("run", LINES)]);
  // train raw + smoothed, val, two tasks
  assert.equal((svg.match(/<path /g) ?? []).length, 5);
  for (const name of ["train (smoothed)", "val extract/name", "val math/add"])
    assert.ok(svg.includes(`>${name}<`), name);
  assert.ok(svg.includes(`width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}"`));
  const log = lossPlotSvg([lossSeriesOfLines("run", LINES)], { logScale: true });
  assert.ok(log.includes("loss (log scale)"));
  assert.deepEqual(logTicks(0.9, 4.2), [1, 2]);
  assert.deepEqual(logTicks(0.01, 30), [0.01, 0.1, 1, 10]);
});

test(
  "ringtune plot writes RUN_DIR/loss.png and .svg; several runs overlay in one plot",
  { timeout: 60_000 },
  async () => {
    const a = runDir("run-a", LINES);
    const one = await runRingtune(["plot", a]);
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(pngSize(path.join(a, "loss.png")), { width: PLOT_WIDTH, height: PLOT_HEIGHT });
    assert.ok(existsSync(path.join(a, "loss.svg")));

    const b = runDir(
      "run-b",
      LINES.map((l) => ("loss" in l ? { ...l, loss: (l.loss as number) / 2 } : l)),
    );
    const cwd = mkdtempSync(path.join(tmpdir(), "ringtune-plot-cwd-"));
    const both = await runRingtune(["plot", a, b, "--log"], { cwd });
    assert.equal(both.code, 0, both.stderr);
    const png = path.join(cwd, "loss_compare.png");
    assert.deepEqual(pngSize(png), { width: PLOT_WIDTH, height: PLOT_HEIGHT });
    const svg = readFileSync(path.join(cwd, "loss_compare.svg"), "utf8");
    for (const label of ["run-a train (smoothed)", "run-b train (smoothed)", "run-b val math/add"])
      assert.ok(svg.includes(`>${label}<`), label);
    assert.notDeepEqual(readFileSync(png), readFileSync(path.join(a, "loss.png")));

    const missing = await runRingtune(["plot", path.join(cwd, "nowhere")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nowhere\/metrics\.jsonl: cannot read/);
  },
);
