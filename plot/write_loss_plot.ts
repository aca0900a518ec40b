// loss.svg and loss.png of a run folder, from its metrics.jsonl: written at the end of every job and by
// `ringtune plot`.
import { writeOutputFile } from "../files/output_files.js";
import path from "node:path";
import { readLossSeries, type LossSeries } from "./loss_series.js";
import { lossPlotSvg } from "./loss_svg.js";
import { svgToPng } from "./render_png.js";

export interface WrittenPlot {
  svg: string;
  png: string;
}

/** Writes `<base>.svg` and `<base>.png` for the runs; returns both paths. */
export async function writePlotFiles(
  runs: readonly LossSeries[],
  base: string,
  opts: { logScale?: boolean } = {},
): Promise<WrittenPlot> {
  const svgText = lossPlotSvg(runs, opts);
  const out = { svg: `${base}.svg`, png: `${base}.png` };
  await writeOutputFile(out.svg, svgText);
  await writeOutputFile(out.png, svgToPng(svgText));
  return out;
}

/** `runDir/loss.svg` and `runDir/loss.png`, titled with `label` (the job id, or the folder's name). */
export function writeLossPlot(runDir: string, label?: string): Promise<WrittenPlot> {
  return writePlotFiles([readLossSeries(runDir, label)], path.join(runDir, "loss"));
}
