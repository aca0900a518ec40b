// The loss plot as SVG, drawn here so the PNG needs no browser: two panels side by side, train loss
// (raw faint, smoothed solid, as LLaMA-Factory's plot_loss draws it) and validation loss (overall solid,
// per task_type dashed), one colour per curve, one or several runs overlaid. Preference runs get a second
// row: the chosen and rejected rewards with their margin, and the share of pairs with the chosen answer ahead.
import { linearTicks, logTicks, tickLabel } from "./axis_ticks.js";
import { PREF_SERIES, smooth, type LossSeries, type Point } from "./loss_series.js";

export const PLOT_WIDTH = 1200;
export const PLOT_HEIGHT = 520;

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];
const FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif";

interface Curve {
  name: string;
  points: Point[];
  color: string;
  dashed?: boolean;
  faint?: boolean;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function trainCurves(runs: readonly LossSeries[]): Curve[] {
  return runs.flatMap((run, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const name = runs.length > 1 ? `${run.label} train` : "train";
    if (run.train.length < 2) return [{ name, points: run.train, color }];
    return [
      { name: `${name} (raw)`, points: run.train, color, faint: true },
      { name: `${name} (smoothed)`, points: smooth(run.train), color },
    ];
  });
}

function valCurves(runs: readonly LossSeries[]): Curve[] {
  let colorIndex = 0;
  return runs.flatMap((run) => {
    const prefix = runs.length > 1 ? `${run.label} ` : "";
    const curves: Curve[] = [];
    if (run.val.length > 0)
      curves.push({ name: `${prefix}val`, points: run.val, color: PALETTE[colorIndex++ % PALETTE.length]! });
    for (const task of Object.keys(run.valByTask).sort())
      curves.push({
        name: `${prefix}val ${task}`,
        points: run.valByTask[task]!,
        color: PALETTE[colorIndex++ % PALETTE.length]!,
        dashed: true,
      });
    return curves;
  });
}

/** The runs' preference metrics `keys`; with `byTask`, each task_type's accuracy dashed beside them. */
function prefCurves(runs: readonly LossSeries[], keys: readonly string[], byTask = false): Curve[] {
  let colorIndex = 0;
  return runs.flatMap((run) => {
    const prefix = runs.length > 1 ? `${run.label} ` : "";
    const curves: Curve[] = keys
      .filter((k) => (run.pref[k]?.length ?? 0) > 0)
      .map((k) => ({
        name: `${prefix}${k.replace("_", " ")}`,
        points: run.pref[k]!,
        color: PALETTE[colorIndex++ % PALETTE.length]!,
      }));
    if (byTask)
      for (const task of Object.keys(run.accuracyByTask).sort())
        curves.push({
          name: `${prefix}accuracy ${task}`,
          points: run.accuracyByTask[task]!,
          color: PALETTE[colorIndex++ % PALETTE.length]!,
          dashed: true,
        });
    return curves;
  });
}

function panel(box: Box, title: string, curves: readonly Curve[], logScale: boolean, valueName = "loss"): string {
  const out: string[] = [];
  const plot = { x: box.x + 64, y: box.y + 36, w: box.w - 84, h: box.h - 150 };
  out.push(
    `<text x="${box.x + box.w / 2}" y="${box.y + 22}" text-anchor="middle" font-size="17" font-weight="bold">${esc(title)}</text>`,
  );
  const all = curves.flatMap((c) => c.points).filter(([, v]) => !logScale || v > 0);
  out.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="none" stroke="#444"/>`);
  if (all.length === 0) {
    out.push(
      `<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h / 2}" text-anchor="middle" font-size="14" fill="#666">no data</text>`,
    );
    return out.join("\n");
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (y1 === y0) [y0, y1] = logScale ? [y0 / 2, y1 * 2] : [y0 - 1, y1 + 1];
  if (!logScale) [y0, y1] = [y0 - (y1 - y0) * 0.05, y1 + (y1 - y0) * 0.05];
  const fy = logScale ? Math.log10 : (v: number) => v;
  const sx = (v: number) => plot.x + ((v - x0) / (x1 - x0)) * plot.w;
  const sy = (v: number) => plot.y + plot.h - ((fy(v) - fy(y0)) / (fy(y1) - fy(y0))) * plot.h;
  for (const t of linearTicks(x0, x1)) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${plot.y}" x2="${x}" y2="${plot.y + plot.h}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${x}" y="${plot.y + plot.h + 18}" text-anchor="middle" font-size="12">${tickLabel(t)}</text>`);
  }
  for (const t of logScale ? logTicks(y0, y1) : linearTicks(y0, y1)) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${plot.x}" y1="${y}" x2="${plot.x + plot.w}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(
      `<text x="${plot.x - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="12">${tickLabel(t)}</text>`,
    );
  }
  out.push(
    `<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 38}" text-anchor="middle" font-size="13">step</text>`,
  );
  const yName = logScale && valueName === "loss" ? "loss (log scale)" : valueName;
  out.push(
    `<text transform="translate(${box.x + 16},${plot.y + plot.h / 2}) rotate(-90)" text-anchor="middle" font-size="13">${yName}</text>`,
  );
  for (const c of curves) {
    const pts = c.points.filter(([, v]) => !logScale || v > 0);
    if (pts.length === 0) continue;
    const d = pts.map(([s, v], i) => `${i === 0 ? "M" : "L"}${sx(s).toFixed(1)},${sy(v).toFixed(1)}`).join("");
    const style = `stroke="${c.color}" stroke-width="${c.faint ? 1 : 2}" fill="none"${c.faint ? ' stroke-opacity="0.3"' : ""}${c.dashed ? ' stroke-dasharray="6,4"' : ""}`;
    out.push(`<path d="${d}" ${style}/>`);
    if (pts.length === 1) out.push(`<circle cx="${sx(pts[0]![0])}" cy="${sy(pts[0]![1])}" r="3" fill="${c.color}"/>`);
  }
  // The legend under the panel, in two columns: names can be long (run labels, task types).
  curves.forEach((c, i) => {
    const lx = plot.x + (i % 2) * (plot.w / 2);
    const ly = plot.y + plot.h + 58 + Math.floor(i / 2) * 18;
    const dash = c.dashed ? ' stroke-dasharray="6,4"' : "";
    const opacity = c.faint ? ' stroke-opacity="0.35"' : "";
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${c.color}" stroke-width="2"${dash}${opacity}/>`,
    );
    out.push(`<text x="${lx + 32}" y="${ly}" dominant-baseline="middle" font-size="12">${esc(c.name)}</text>`);
  });
  return out.join("\n");
}

/** The SVG document of the plot; `logScale` draws the loss axes in powers of ten. */
export function lossPlotSvg(runs: readonly LossSeries[], opts: { logScale?: boolean; title?: string } = {}): string {
  const half = PLOT_WIDTH / 2;
  const title = opts.title ?? (runs.length === 1 ? runs[0]!.label : runs.map((r) => r.label).join(" vs "));
  const pref = runs.some((r) => PREF_SERIES.some((k) => (r.pref[k]?.length ?? 0) > 0));
  const height = pref ? 2 * PLOT_HEIGHT - 24 : PLOT_HEIGHT;
  const prefRow = (y: number) => [
    panel(
      { x: 0, y, w: half, h: PLOT_HEIGHT - 24 },
      "preference rewards",
      prefCurves(runs, ["rewards_chosen", "rewards_rejected", "margin"]),
      false,
      "reward",
    ),
    panel(
      { x: half, y, w: half, h: PLOT_HEIGHT - 24 },
      "preference accuracy",
      prefCurves(runs, ["accuracy"], true),
      false,
      "share of pairs",
    ),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PLOT_WIDTH}" height="${height}" viewBox="0 0 ${PLOT_WIDTH} ${height}" font-family="${FONT}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${half}" y="20" text-anchor="middle" font-size="14" fill="#333">${esc(title)}</text>`,
    panel({ x: 0, y: 24, w: half, h: PLOT_HEIGHT - 24 }, "training loss", trainCurves(runs), !!opts.logScale),
    panel({ x: half, y: 24, w: half, h: PLOT_HEIGHT - 24 }, "validation loss", valCurves(runs), !!opts.logScale),
    ...(pref ? prefRow(PLOT_HEIGHT) : []),
    "</svg>",
  ].join("\n");
}
