// A coordinator as its own OS process (`ringtune coordinator`), for faults only a process shows: kill -9
// leaves its lease in KV unreleased and its jobs marked running, as a crashed machine would.
import os from "node:os";
import { spawn, type ChildProcess } from "node:child_process";
import { RINGTUNE_CLI } from "./processes.js";
import type { LogLine } from "./cluster.js";

const live = new Set<CoordinatorProcess>();
process.on("exit", () => {
  for (const c of live) c.killNow();
});

/** For an `after` hook: ends every coordinator process this module started. */
export async function killAllCoordinatorProcesses(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill9()));
}

export class CoordinatorProcess {
  /** its log lines (pino JSON on stderr), parsed; other lines kept as `{ msg: line }` */
  readonly log: LogLine[] = [];
  private partial = "";

  private constructor(private readonly child: ChildProcess) {
    const keep = (b: Buffer) => {
      const lines = (this.partial + b.toString()).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) {
        if (!line) continue;
        try {
          this.log.push(JSON.parse(line) as LogLine);
        } catch {
          this.log.push({ msg: line });
        }
      }
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    live.add(this);
    child.once("exit", () => live.delete(this));
  }

  static start(natsUrl: string, extraArgs: string[] = []): CoordinatorProcess {
    const child = spawn(
      process.execPath,
      [
        RINGTUNE_CLI,
        "coordinator",
        "--nats",
        natsUrl,
        "--insecure",
        // test jobs live in temp folders
        "--data-root",
        os.tmpdir(),
        "--output-root",
        os.tmpdir(),
        ...extraArgs,
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    return new CoordinatorProcess(child);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Whether it logged a line whose message matches. */
  logged(msg: RegExp): boolean {
    return this.log.some((l) => msg.test(l.msg ?? ""));
  }

  /** The step each start of the job began after, from its log. */
  startSteps(jobId: string): number[] {
    return this.log.filter((l) => l.msg === "job prepared" && l.job === jobId).map((l) => l.startStep as number);
  }

  /** SIGKILL: no lease released, nothing flushed. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.killNow();
    await exited;
  }

  killNow(): void {
    if (!this.running) return;
    this.child.kill("SIGCONT");
    this.child.kill("SIGKILL");
  }

  /** SIGSTOP: alive but silent (no lease renewals), as a hung machine. */
  pause(): void {
    this.child.kill("SIGSTOP");
  }

  resume(): void {
    this.child.kill("SIGCONT");
  }

  /** Resolves with the exit code once the process ends. */
  exited(): Promise<number | null> {
    if (!this.running) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }
}
