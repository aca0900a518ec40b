// A worker as its own OS process (`ringtune worker`), for faults an in-process worker cannot show: a
// process stopped with SIGSTOP keeps its sockets open but sends nothing, as a hung machine does.
import { spawn, type ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { RINGTUNE_CLI } from "./processes.js";

const TEMP_ROOTS = ["--data-root", tmpdir(), "--output-root", tmpdir()];

/** Every worker process still running, so none outlives the tests (see killAllWorkerProcesses). */
const live = new Set<WorkerProcess>();

// Last resort if a test run ends without its hooks: a stopped child would otherwise stay stopped forever.
process.on("exit", () => {
  for (const w of live) w.killNow();
});

/** For an `after` hook: ends every worker process this module started, stopped ones included. */
export async function killAllWorkerProcesses(): Promise<void> {
  await Promise.all([...live].map((w) => w.kill()));
}

export class WorkerProcess {
  private output = "";

  private constructor(
    readonly id: string,
    private readonly child: ChildProcess,
  ) {
    // Drained always, so a chatty worker never blocks on a full pipe.
    const keep = (b: Buffer) => (this.output = (this.output + b.toString()).slice(-20_000));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    live.add(this);
    child.once("exit", () => live.delete(this));
  }

  /**
   * extraArgs: more `ringtune worker` flags (`--memory 64MiB`); the test servers here have no users. env adds
   * to the environment (RINGTUNE_FAILPOINT, say).
   */
  static start(natsUrl: string, id: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): WorkerProcess {
    const child = spawn(
      process.execPath,
      // test jobs live in temp folders, as CoordinatorProcess's roots say
      [RINGTUNE_CLI, "worker", "--nats", natsUrl, "--insecure", "--id", id, ...TEMP_ROOTS, ...extraArgs],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env },
      },
    );
    return new WorkerProcess(id, child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The last of what the process wrote (its log), for failure messages. */
  get log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGSTOP: no heartbeats, no replies, no data-plane traffic, every socket left open. */
  pause(): void {
    this.child.kill("SIGSTOP");
  }

  /** SIGCONT after pause(): the process carries on with whatever it had read before it stopped. */
  resume(): void {
    if (this.running) this.child.kill("SIGCONT");
  }

  /** Ends the process whatever state it is in (a stopped one is continued first so SIGKILL is not held up). */
  async kill(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.killNow();
    await exited;
  }

  /** SIGCONT then SIGKILL, without waiting for the exit. */
  killNow(): void {
    if (!this.running) return;
    this.child.kill("SIGCONT");
    this.child.kill("SIGKILL");
  }
}
