// Real processes for end-to-end tests: the built `ringtune` command and the deploy scripts, run as a
// user runs them, each in its own process group so that a test that fails or times out can stop what
// it started; and a look at /proc for processes a test left behind.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, found from this file's place in dist/test/helpers. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** The built command line program (package.json's bin). */
export const RINGTUNE_CLI = path.join(REPO_ROOT, "dist/cli/ringtune.js");
/** The launcher at the repository root that the README's commands use: `./ringtune ...`. */
export const RINGTUNE_LAUNCHER = path.join(REPO_ROOT, "ringtune");

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * Runs a command to its end. On timeout its whole process group gets SIGKILL and the promise rejects
 * with what it printed, so a hung script fails the test with its output instead of hanging it.
 */
export function runProcess(command: string, args: string[], opts: RunOptions = {}): Promise<ProcessResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b) => (stdout += b));
    child.stderr.on("data", (b) => (stderr += b));
    const timer = setTimeout(() => {
      killGroup(child.pid);
      reject(new Error(`${command} ${args.join(" ")} ran over ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `ringtune ARGS` through the built program, from the repository root. */
export function runRingtune(args: string[], opts: RunOptions = {}): Promise<ProcessResult> {
  return runProcess(process.execPath, [RINGTUNE_CLI, ...args], opts);
}

/** Runs `./ringtune ARGS` from the repository root, exactly as the README writes it. */
export function runLauncher(args: string[], opts: RunOptions = {}): Promise<ProcessResult> {
  return runProcess("./ringtune", args, { ...opts, cwd: REPO_ROOT });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is gone already
  }
}

/** Whether `pid` runs: exists and is not a zombie (an exited child nobody has reaped yet). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but is not ours
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return processState(pid) !== "Z";
}

/** The state letter of /proc/PID/stat (R, S, Z, ...); undefined once the process is gone. */
function processState(pid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Pids of live processes whose command line contains `marker` (a test's unique temp folder or port),
 * this process excepted. Zombies are not counted: they no longer run.
 */
export function processesNaming(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmdline.includes(marker) && isAlive(Number(entry))) found.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** A TCP port nothing listens on now (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.once("error", reject);
  });
}

/** Polls `cond` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
