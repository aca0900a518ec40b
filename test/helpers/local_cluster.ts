// `make cluster-up` / `make cluster-down` for tests: the deploy scripts with their state folder (pid
// files, logs, the JetStream store) in a temp folder and nats-server on a free port, so a test writes
// nothing into the repository and never meets a cluster a person started.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  REPO_ROOT,
  freePort,
  isAlive,
  processesNaming,
  runProcess,
  runRingtune,
  type ProcessResult,
} from "./processes.js";

export const CLUSTER_UP = path.join(REPO_ROOT, "deploy/scripts/cluster-up.sh");
export const CLUSTER_DOWN = path.join(REPO_ROOT, "deploy/scripts/cluster-down.sh");

/** The environment the scripts read: where their state goes, which port, how many CPU workers. */
export interface ClusterEnv extends NodeJS.ProcessEnv {
  RINGTUNE_RUN_DIR: string;
  NATS_PORT: string;
  DASHBOARD_PORT: string;
}

export class LocalCluster {
  private constructor(
    /** a temp folder for everything of this cluster: state under run/, job outputs anywhere else */
    readonly dir: string,
    readonly env: ClusterEnv,
  ) {}

  /** A temp state folder and a free port; nothing is started yet. */
  static async prepare(workers = 2): Promise<LocalCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), "ringtune-e2e-"));
    const env: ClusterEnv = {
      RINGTUNE_RUN_DIR: path.join(dir, "run"),
      NATS_PORT: String(await freePort()),
      // The dashboard on a free port, the workers' /metrics on ports the system picks: never a person's.
      DASHBOARD_PORT: String(await freePort()),
      WORKER_METRICS_PORT: "0",
      // An empty NATS_URL has the script start its own server (a person's NATS_URL must not leak in).
      NATS_URL: "",
      WORKERS: String(workers),
      WORKER_DEVICE: "cpu",
      // Generous: four test suites may share two cores.
      CLUSTER_UP_TIMEOUT: "120",
      // The coordinator's data cache for jobs that name no cache_dir (else .cache/ in the checkout).
      RINGTUNE_CACHE_DIR: path.join(dir, "cache"),
      // Jobs of tests read fixtures from the checkout and temp folders, and write only to temp folders.
      RINGTUNE_DATA_ROOT: `${REPO_ROOT}:${tmpdir()}`,
      RINGTUNE_OUTPUT_ROOT: tmpdir(),
    };
    return new LocalCluster(dir, env);
  }

  get runDir(): string {
    return this.env.RINGTUNE_RUN_DIR;
  }

  get natsUrl(): string {
    return `nats://127.0.0.1:${this.env.NATS_PORT}`;
  }

  up(): Promise<ProcessResult> {
    return runProcess("bash", [CLUSTER_UP], { env: this.env, timeoutMs: 180_000 });
  }

  down(): Promise<ProcessResult> {
    return runProcess("bash", [CLUSTER_DOWN], { env: this.env, timeoutMs: 60_000 });
  }

  /**
   * `ringtune ARGS` against this cluster (NATS_URL, as a user would export it); its client credentials
   * are found under the run dir, as in a checkout where `make cluster-up` ran.
   */
  cli(args: string[], timeoutMs = 60_000): Promise<ProcessResult> {
    return runRingtune(args, { env: { NATS_URL: this.natsUrl, RINGTUNE_RUN_DIR: this.runDir }, timeoutMs });
  }

  /** Process name -> pid, from the pid files cluster-up wrote. */
  pids(): Map<string, number> {
    const out = new Map<string, number>();
    if (!existsSync(this.runDir)) return out;
    for (const f of readdirSync(this.runDir).filter((f) => f.endsWith(".pid")))
      out.set(f.slice(0, -4), Number(readFileSync(path.join(this.runDir, f), "utf8").trim()));
    return out;
  }

  /**
   * Processes of this cluster still running: any whose command line names its state folder or its
   * NATS port (nats-server names the first, the coordinator and workers the second).
   */
  leftovers(): number[] {
    // The trailing space ends the port: port 4222 must not match 42225.
    const url = `${this.natsUrl} `;
    return [...new Set([...processesNaming(this.runDir), ...processesNaming(url)])];
  }

  /** For `after` hooks: cluster-down, then SIGKILL whatever of this cluster survived it, then the temp folder. */
  async destroy(): Promise<void> {
    await this.down().catch(() => undefined);
    for (const pid of [...this.pids().values(), ...this.leftovers()]) {
      if (!isAlive(pid)) continue;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
