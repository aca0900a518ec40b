// Runs the built `ringtune` command as a user would, asynchronously (a fake coordinator in the test
// process must keep answering while the command runs).
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** dist/cli/ringtune.js, found from this file's place in dist/test/cli. */
export const RINGTUNE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../cli/ringtune.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `env` adds to this process's environment. The test servers these commands talk to have no users, so
 * RINGTUNE_INSECURE=1 is set unless `env` says otherwise (RINGTUNE_INSECURE: "" to test credentials).
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RINGTUNE, ...args], {
      env: { ...process.env, RINGTUNE_INSECURE: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b) => (stdout += b));
    child.stderr.on("data", (b) => (stderr += b));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ringtune ${args.join(" ")} ran over ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port nothing listens on (bound, then released): where a command finds no server. */
export { freePort as deadPort } from "./processes.js";

export function lastLine(text: string): string {
  const lines = text.trimEnd().split("\n");
  return lines[lines.length - 1] ?? "";
}
