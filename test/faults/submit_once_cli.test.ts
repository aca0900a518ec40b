// Submit handled once, through the `ringtune submit` command against coordinator processes: a submit repeated
// with its request id gets the job the first one created, also from a coordinator that took over after the
// first was killed, and also when the retry is the command's own while no coordinator answers.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { startNatsServer } from "../helpers/nats_server.js";
import { waitUntil } from "../helpers/processes.js";
import { lastLine, RINGTUNE, runCli, type CliResult } from "../helpers/run_cli.js";
import { writeTinyJob, writeTinyJobData } from "../helpers/tiny_job.js";

after(killAllCoordinatorProcesses);

const LEASE = ["--lease-ttl", "3"];

/** `ringtune ARGS` running: its stderr so far can be read while it runs. */
function startCli(args: string[]): { stderr: () => string; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [RINGTUNE, ...args], {
    env: { ...process.env, RINGTUNE_INSECURE: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b) => (stdout += b));
  child.stderr.on("data", (b) => (stderr += b));
  const result = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { stderr: () => stderr, result };
}

test(
  "a submit retried with its request id returns the same job, across a coordinator failover",
  { timeout: 240_000 },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ringtune-submit-once-"));
    writeTinyJobData(dir);
    // No worker runs: the jobs wait in the queue, which is all this test needs of them.
    const job = writeTinyJob(dir, "job.yaml", { maxSteps: 5, output: "out" });
    const server = await startNatsServer();
    const active = CoordinatorProcess.start(server.url, LEASE);
    let standby: CoordinatorProcess | undefined;
    const submit = (...args: string[]) => runCli(["submit", job, "--nats", server.url, ...args], {}, 120_000);
    const jobIds = async () => {
      const r = await runCli(["jobs", "--json", "--nats", server.url], {}, 60_000);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { id: string }).id);
    };
    try {
      await waitUntil(async () => active.logged(/coordinator ready/), "the coordinator to start", 90_000);
      standby = CoordinatorProcess.start(server.url, LEASE);
      await waitUntil(async () => standby!.logged(/standing by/), "the second coordinator to stand by", 90_000);

      const first = await submit("--request-id", "nightly-42");
      assert.equal(first.code, 0, first.stderr);
      const id = lastLine(first.stdout);
      assert.match(id, /^job-/);
      const again = await submit("--request-id", "nightly-42");
      assert.equal(again.code, 0, again.stderr);
      assert.equal(lastLine(again.stdout), id, "the repeated submit names the first job");
      assert.deepEqual(await jobIds(), [id], "one job for two requests");
      assert.ok(active.logged(/submit retried; answered with the job it created/));

      // Killed without releasing its lease, with the standby held stopped: nobody answers on the submit
      // subject until the standby is continued and takes over, and the command keeps retrying meanwhile.
      await active.kill9();
      standby.pause();
      const retrying = startCli([
        "submit",
        job,
        "--nats",
        server.url,
        "--request-id",
        "nightly-42",
        "--retry-for",
        "120",
      ]);
      try {
        await waitUntil(async () => /retrying with request id nightly-42/.test(retrying.stderr()), "a retry", 90_000);
      } finally {
        standby.resume();
      }
      const during = await retrying.result;
      assert.equal(during.code, 0, during.stderr);
      assert.match(
        during.stderr,
        /no coordinator answered on ringtune\.job\.submit.*; retrying with request id nightly-42/,
      );
      assert.equal(lastLine(during.stdout), id, "the coordinator that took over knows the request id");
      assert.ok(standby.logged(/coordinator ready/));
      assert.ok(standby.logged(/submit retried; answered with the job it created/));
      assert.deepEqual(await jobIds(), [id]);

      // its own output folder: the first job, still queued, holds "out"
      const other = await submit("--set", "output=out-other");
      assert.equal(other.code, 0, other.stderr);
      assert.match(other.stderr, /request id submit-[0-9a-f-]+ \(repeat it with --request-id/);
      assert.notEqual(lastLine(other.stdout), id, "a new request (its own generated id) is a new job");

      const changed = await submit("--request-id", "nightly-42", "--set", "lr=0.1");
      assert.notEqual(changed.code, 0);
      assert.match(
        changed.stderr,
        new RegExp(`request_id 'nightly-42' was already used for job ${id} with a different spec`),
      );
      assert.equal((await jobIds()).length, 2);
    } finally {
      await active.kill9();
      await standby?.kill9();
      await server.stop();
    }
  },
);
