// Progress on stderr for long runs: one line rewritten in place on a terminal, a line every few
// seconds otherwise; silent when quiet (`--json` keeps stdout and stderr clean for machines).
export class Progress {
  private last = 0;
  private shown = false;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly quiet: boolean,
    private readonly intervalMs = 500,
  ) {}

  update(stage: string, done: number, total?: number): void {
    if (this.quiet) return;
    const now = Date.now();
    const interval = this.tty ? this.intervalMs : this.intervalMs * 10;
    if (now - this.last < interval) return;
    this.last = now;
    const pct = total ? ` (${((100 * done) / total).toFixed(0)}%)` : "";
    const line = `${stage}: ${done}${total ? `/${total}` : ""}${pct}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
    this.shown = true;
  }

  /** A free-form progress line (counts and rates), shown like update's. */
  line(text: string): void {
    if (this.quiet) return;
    const now = Date.now();
    if (now - this.last < (this.tty ? this.intervalMs : this.intervalMs * 10)) return;
    this.last = now;
    if (this.tty) process.stderr.write(`\r\x1b[K${text}`);
    else process.stderr.write(`${text}\n`);
    this.shown = true;
  }

  /** A stage finished: always shown (when not quiet), so the log says what took the time. */
  note(message: string): void {
    if (this.quiet) return;
    if (this.tty && this.shown) process.stderr.write("\r\x1b[K");
    process.stderr.write(`${message}\n`);
    this.shown = false;
  }
}
