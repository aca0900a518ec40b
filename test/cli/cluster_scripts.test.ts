// make cluster-up / cluster-down (deploy/scripts): a real local cluster on a free port in a temp run dir.
// The scripts start the `coordinator` and `worker` commands: without them every test here fails and says so.
// cluster-down comes while a job reads and tokenizes many files: every process stops on SIGTERM, none needs
// SIGKILL. With SERVE, the routed OpenAI door takes only clients that send the key cluster-up minted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { natsAuth } from "../../cli/nats_credentials.js";
import { jobSubjects } from "../../proto/mod.js";
import { trainingFixture } from "../helpers/cluster.js";
import { rawRequest } from "../helpers/json_requests.js";
import { largeDataset } from "../helpers/large_dataset.js";
import { writeServeBase } from "../helpers/serve_fixtures.js";
import { RINGTUNE, deadPort, runCli } from "../helpers/run_cli.js";

const ROOT = path.resolve(path.dirname(RINGTUNE), "../..");
const UP = path.join(ROOT, "deploy/scripts/cluster-up.sh");
const DOWN = path.join(ROOT, "deploy/scripts/cluster-down.sh");

/** Fails with the help text when `ringtune --help` does not list the commands the scripts start. */
function assertProcessCommandsExist(): void {
  const help = spawnSync(process.execPath, [RINGTUNE, "--help"], { encoding: "utf8" });
  for (const name of ["coordinator", "worker"])
    assert.match(
      help.stdout,
      new RegExp(`^\\s+${name}\\s`, "m"),
      `\`ringtune --help\` lists no '${name}' command, which cluster-up.sh starts (exit ${help.status}):\n${help.stdout}${help.stderr}`,
    );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Files and records of a job whose data preparation takes seconds: 120,000 records (30 MB) over 200 files. */
const PREPARATION_FILES = 200;
const RECORDS_PER_FILE = 600;

/**
 * Submits, with the client credentials cluster-up wrote under `run`, a job reading many files, and returns
 * once the coordinator is preparing its data.
 */
async function jobInPreparation(run: string, url: string, dir: string, baseSpec: object): Promise<string> {
  const data = [];
  for (let f = 0; f < PREPARATION_FILES; f++) {
    await largeDataset(path.join(dir, `part-${f}.jsonl`), RECORDS_PER_FILE, f * RECORDS_PER_FILE);
    data.push({ path: `part-${f}.jsonl` });
  }
  const nc = await connect({ servers: url, ...natsAuth({}, "client", { RINGTUNE_RUN_DIR: run }, () => {}).options });
  try {
    const spec = { ...baseSpec, data, workers: 1, max_steps: 2, output: "prepared" };
    const reply = await rawRequest(nc, jobSubjects.submit, { spec, base_dir: dir });
    assert.equal(reply.json.ok, true, JSON.stringify(reply.json));
    const id = reply.json.id as string;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const job = (await rawRequest(nc, jobSubjects.get, { id })).json.job as { status: string; message?: string };
      if (job.status === "preparing") return id;
      assert.equal(job.status, "queued", job.message);
      assert.ok(Date.now() < deadline, "the job did not start preparing within 20 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await nc.close();
  }
}

function script(file: string, env: NodeJS.ProcessEnv) {
  return spawnSync("bash", [file], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 60_000 });
}

/**
 * The routed door's /v1/models: 401 without a key or with another, 200 with the one in `keyFile`. The
 * coordinator opens its HTTP door while starting, so the first answer may take a moment.
 */
async function assertModelsNeedKey(serveHttp: string, keyFile: string): Promise<void> {
  const url = `http://${serveHttp}/v1/models`;
  const key = readFileSync(keyFile, "utf8").trim();
  assert.ok(key.length >= 32, `a ${key.length}-character key`);
  const deadline = Date.now() + 10_000;
  let bare: Response;
  for (;;) {
    try {
      bare = await fetch(url);
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.equal(bare.status, 401, await bare.text());
  const wrong = await fetch(url, { headers: { authorization: `Bearer ${key}x` } });
  assert.equal(wrong.status, 401, await wrong.text());
  const keyed = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(keyed.status, 200, await keyed.text());
}

test("cluster-up starts NATS, a coordinator and N workers; a second run says it is up; cluster-down stops exactly them", async () => {
  assertProcessCommandsExist();
  const run = mkdtempSync(path.join(tmpdir(), "ringtune-run-"));
  const { dir, baseSpec } = trainingFixture();
  const serveBase = await writeServeBase(path.join(dir, "serve-base"));
  const serveHttp = `127.0.0.1:${await deadPort()}`;
  const port = await deadPort();
  const env = {
    RINGTUNE_RUN_DIR: run,
    RINGTUNE_DATA_ROOT: dir,
    RINGTUNE_OUTPUT_ROOT: dir,
    NATS_PORT: String(port),
    WORKERS: "2",
    WORKER_DEVICE: "cpu",
    NATS_URL: "",
    CLUSTER_UP_TIMEOUT: "30",
    // the dashboard and the workers' /metrics on free ports: never those of a cluster a person runs
    DASHBOARD_PORT: String(await deadPort()),
    WORKER_METRICS_PORT: "0",
    // serving the base through the coordinator's HTTP door, with no key file given: cluster-up mints one
    SERVE: serveBase,
    SERVE_HTTP: serveHttp,
    SERVE_API_KEY_FILE: "",
  };
  // A process that is not ours, named by a pid file: cluster-down must leave it alone.
  const bystander = spawn("sleep", ["60"], { stdio: "ignore" });
  try {
    const up = script(UP, env);
    assert.equal(up.status, 0, up.stdout + up.stderr);
    assert.match(
      up.stdout,
      new RegExp(
        `cluster up: NATS at nats://127\\.0\\.0\\.1:${port}, a coordinator \\(and a standby\\) and 2 worker\\(s\\) on CPU`,
      ),
    );
    const names = ["nats", "coordinator", "worker-0", "worker-1"];
    const pids = names.map((n) => Number(readFileSync(path.join(run, `${n}.pid`), "utf8")));
    assert.ok(pids.every(alive), "every started process runs");
    for (const n of names) assert.ok(existsSync(path.join(run, "logs", `${n}.log`)));

    const keyFile = path.join(run, "auth", "serve-api-key");
    assert.ok(
      up.stdout.includes(`serving ${serveBase} on http://${serveHttp}/v1`) &&
        up.stdout.includes(`HTTP clients send the key in ${keyFile}`),
      up.stdout,
    );
    assert.equal((statSync(keyFile).mode & 0o077).toString(8), "0", "the API key is readable by others");
    await assertModelsNeedKey(serveHttp, keyFile);

    const again = script(UP, env);
    assert.equal(again.status, 0);
    assert.match(again.stdout, /already up/);

    // The server has users: a command finds the client's credentials cluster-up wrote under the run dir,
    // and one given none (another run dir, nothing in the environment) is refused by the server.
    const status = await runCli(["cluster", "status", "--json", "--nats", `nats://127.0.0.1:${port}`], {
      RINGTUNE_RUN_DIR: run,
      RINGTUNE_INSECURE: "",
    });
    const strangerEnv = { RINGTUNE_RUN_DIR: path.join(run, "elsewhere"), NATS_USER: "", NATS_PASSWORD: "" };
    const stranger = await runCli(
      ["cluster", "status", "--insecure", "--nats", `nats://127.0.0.1:${port}`],
      strangerEnv,
    );
    assert.equal(stranger.code, 1);
    assert.match(stranger.stderr, /refused the credentials/);
    assert.equal(
      (statSync(path.join(run, "auth", "client.env")).mode & 0o077).toString(8),
      "0",
      "credentials readable by others",
    );
    const ids = JSON.parse(status.stdout)
      .workers.map((w: { worker_id: string }) => w.worker_id)
      .sort();
    assert.deepEqual(ids, ["worker-0", "worker-1"]);

    await jobInPreparation(run, `nats://127.0.0.1:${port}`, dir, baseSpec);
    await new Promise((r) => setTimeout(r, 300)); // well inside the reading
    writeFileSync(path.join(run, "worker-7.pid"), String(bystander.pid));
    const downAt = Date.now();
    const down = script(DOWN, env);
    const downMs = Date.now() - downAt;
    assert.equal(down.status, 0, down.stdout + down.stderr);
    assert.doesNotMatch(down.stdout + down.stderr, /SIGKILL/, "a process did not stop on SIGTERM");
    assert.ok(downMs < 10_000, `cluster-down took ${downMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(
      pids.every((p) => !alive(p)),
      "every started process stopped",
    );
    assert.ok(alive(bystander.pid!), "a process not started by cluster-up is left alone");
    assert.match(down.stdout, /worker-7: pid \d+ is not a ringtune or nats-server process/);
    assert.ok(
      names.every((n) => !existsSync(path.join(run, `${n}.pid`))),
      "pid files removed",
    );
  } finally {
    script(DOWN, env);
    bystander.kill();
    rmSync(run, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cluster-up with NATS_URL at no server fails at once and says so", async () => {
  assertProcessCommandsExist();
  const run = mkdtempSync(path.join(tmpdir(), "ringtune-run-"));
  try {
    const url = `nats://127.0.0.1:${await deadPort()}`;
    const up = script(UP, { RINGTUNE_RUN_DIR: run, NATS_URL: url });
    assert.equal(up.status, 1);
    assert.match(up.stderr, new RegExp(`no NATS server at ${url} \\(NATS_URL\\)`));
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test("cluster-up with SERVE and a SERVE_API_KEY_FILE that is missing refuses to serve, naming the file", async () => {
  assertProcessCommandsExist();
  const run = mkdtempSync(path.join(tmpdir(), "ringtune-run-"));
  const base = path.join(run, "base");
  mkdirSync(base);
  writeFileSync(path.join(base, "config.json"), "{}");
  const missing = path.join(run, "no-such-key");
  const env = {
    RINGTUNE_RUN_DIR: run,
    NATS_PORT: String(await deadPort()),
    NATS_URL: "",
    DASHBOARD_PORT: String(await deadPort()),
    SERVE: base,
    SERVE_API_KEY_FILE: missing,
  };
  try {
    const up = script(UP, env);
    assert.equal(up.status, 1, up.stdout + up.stderr);
    assert.ok(up.stderr.includes(`SERVE_API_KEY_FILE=${missing} is missing or empty`), up.stderr);
    assert.ok(!existsSync(path.join(run, "coordinator.pid")), "a coordinator was started");
  } finally {
    script(DOWN, env);
    rmSync(run, { recursive: true, force: true });
  }
});
