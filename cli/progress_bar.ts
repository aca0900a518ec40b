// Shows a job's progress while it runs: one line redrawn in place on a terminal, plain lines every few
// seconds when stderr is a file or a pipe (a log should not fill with carriage returns). Status changes
// are always whole lines, so a log keeps the job's story: waiting (and why), preparing, running, the end.
import type { JobRecordBody } from "./job_client.js";

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** default: the stream's own isTTY */
  tty?: boolean;
  /** least time between two plain progress lines (not on a TTY) */
  plainIntervalMs?: number;
  now?: () => number;
}

const BAR_WIDTH = 20;

/** "2h05m", "4m07s", "9s"; "--" when unknown. */
export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** "812 tok/s", "12.3k tok/s", "1.20M tok/s". */
export function formatTokensPerS(rate: number | undefined): string {
  if (rate === undefined || !Number.isFinite(rate) || rate < 0) return "-- tok/s";
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(2)}M tok/s`;
  if (rate >= 1e3) return `${(rate / 1e3).toFixed(1)}k tok/s`;
  return `${Math.round(rate)} tok/s`;
}

export function formatLoss(loss: number | undefined): string {
  return loss === undefined ? "--" : loss.toFixed(4);
}

/**
 * Seconds left at a constant step rate measured since `since`; undefined until a step has been seen
 * to pass (the first steps include start-up, so the coordinator's own eta_s is preferred when given).
 */
export function estimateEtaS(
  step: number,
  total: number,
  since: { step: number; ms: number } | undefined,
  nowMs: number,
): number | undefined {
  if (!since || total <= 0 || step <= since.step || nowMs <= since.ms) return undefined;
  const msPerStep = (nowMs - since.ms) / (step - since.step);
  return (Math.max(0, total - step) * msPerStep) / 1000;
}

/** `[######......] 120/500  24%  loss 2.3456  lr 3.00e-4  12.3k tok/s  ETA 4m05s` */
export function formatProgressLine(
  r: Pick<JobRecordBody, "step" | "total_steps" | "train_loss" | "lr" | "tokens_per_s">,
  etaS: number | undefined,
): string {
  const frac = r.total_steps > 0 ? Math.min(1, r.step / r.total_steps) : 0;
  const filled = Math.round(frac * BAR_WIDTH);
  const bar = `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}]`;
  const lr = r.lr === undefined ? "--" : r.lr.toExponential(2);
  return [
    `${bar} ${r.step}/${r.total_steps || "?"}`,
    `${String(Math.floor(frac * 100)).padStart(3)}%`,
    `loss ${formatLoss(r.train_loss.last)}`,
    `lr ${lr}`,
    formatTokensPerS(r.tokens_per_s),
    `ETA ${formatEta(etaS)}`,
  ].join("  ");
}

/** The line printed when a job reaches its final status. */
export function formatFinalLine(r: JobRecordBody): string {
  const losses = `train loss ${formatLoss(r.train_loss.first)} -> ${formatLoss(r.train_loss.last)}`;
  const val = r.val_loss === undefined ? "" : `, val loss ${formatLoss(r.val_loss)}`;
  if (r.status === "completed") return `job ${r.id} completed: ${r.step} steps, ${losses}${val}; output: ${r.output}`;
  const why = r.message ? `: ${r.message}` : "";
  return `job ${r.id} ${r.status} at step ${r.step}/${r.total_steps}${why}`;
}

export class JobProgress {
  private readonly tty: boolean;
  private readonly plainIntervalMs: number;
  private readonly now: () => number;
  private lastStatusLine = "";
  private barShown = false;
  private lastPlainMs = -Infinity;
  private lastPlainStep = -1;
  private since: { step: number; ms: number } | undefined;

  constructor(
    private readonly stream: ProgressStream,
    options: ProgressOptions = {},
  ) {
    this.tty = options.tty ?? Boolean(stream.isTTY);
    this.plainIntervalMs = options.plainIntervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Shows one record: a status line when the status (or its message) changed, else the progress. */
  update(r: JobRecordBody): void {
    const statusLine = this.statusLine(r);
    if (statusLine !== this.lastStatusLine) {
      this.lastStatusLine = statusLine;
      this.line(statusLine);
    }
    if (r.status !== "running") return;
    const now = this.now();
    if (!this.since || r.step < this.since.step) this.since = { step: r.step, ms: now };
    const progress = formatProgressLine(r, r.eta_s ?? estimateEtaS(r.step, r.total_steps, this.since, now));
    if (this.tty) {
      const width = this.stream.columns && this.stream.columns > 10 ? this.stream.columns - 1 : undefined;
      this.stream.write(`\r\x1b[K${width ? progress.slice(0, width) : progress}`);
      this.barShown = true;
    } else if (
      r.step > 0 &&
      r.step !== this.lastPlainStep &&
      (now - this.lastPlainMs >= this.plainIntervalMs || r.step === r.total_steps)
    ) {
      this.lastPlainMs = now;
      this.lastPlainStep = r.step;
      this.stream.write(`${progress}\n`);
    }
  }

  /** Leaves the terminal on a fresh line (call before printing anything else). */
  end(): void {
    this.clearBar();
  }

  private statusLine(r: JobRecordBody): string {
    if (r.status === "completed" || r.status === "failed" || r.status === "canceled") return formatFinalLine(r);
    // A running job's message names a phase (generation eval, saving), not a step: worth a line.
    const why = r.message ? `: ${r.message}` : "";
    return `job ${r.id} ${r.status}${why}`;
  }

  private line(s: string): void {
    this.clearBar();
    this.stream.write(`${s}\n`);
  }

  private clearBar(): void {
    if (this.barShown) this.stream.write("\r\x1b[K");
    this.barShown = false;
  }
}
