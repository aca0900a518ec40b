// `ringtune plot RUN_DIR [RUN_DIR...]`: the loss plot of one run, or several runs overlaid, as SVG and
// PNG, from their metrics.jsonl; no browser needed.
import path from "node:path";
import { readLossSeries } from "../../plot/loss_series.js";
import { writePlotFiles } from "../../plot/write_loss_plot.js";
import { parseFlags, UsageError, type Command } from "../args.js";

export const plot: Command = {
  name: "plot",
  summary: "draw train/validation loss (per task too) of runs as loss.png and loss.svg",
  usage:
    "usage: ringtune plot RUN_DIR [RUN_DIR...] [--out FILE.png] [--log]\n" +
    "  RUN_DIR  a job's output folder (it holds metrics.jsonl)\n" +
    "  --out    default: RUN_DIR/loss.png for one run, ./loss_compare.png for several (the .svg beside it)\n" +
    "  --log    loss on a log scale",
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { out: { type: "string" }, log: { type: "boolean" } }, true);
    if (positionals.length === 0) throw new UsageError("name at least one RUN_DIR");
    const runs = positionals.map((dir) => readLossSeries(dir));
    const out =
      (values.out as string | undefined) ??
      (runs.length === 1 ? path.join(positionals[0]!, "loss.png") : "loss_compare.png");
    if (!out.endsWith(".png")) throw new UsageError(`--out ${out}: name a .png file (the .svg is written beside it)`);
    const written = await writePlotFiles(runs, out.slice(0, -".png".length), { logScale: !!values.log });
    console.log(`${written.png}\n${written.svg}`);
  },
};
