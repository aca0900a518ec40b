// NATS over TLS with client certificates, as `make cluster-up TLS=1` sets it up: the CA and certificates
// (one per role and one per worker) come from deploy/scripts/tls-certs.sh, the server has the cluster's users
// (render_auth_conf) and cluster-up's tls block (render_tls_conf, verify_and_map): a client certificate names
// the user a connection is, and that user's password is still required. A coordinator, a worker and
// `ringtune submit` run a tiny job through it; a stolen password without its role's certificate, a certificate
// of one role used as another, and no certificate at all are refused, and worker w1's certificate cannot
// speak for worker w0 or read the coordinator's subjects.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { natsAuth } from "../../cli/nats_credentials.js";
import { jobSubjects, subjects } from "../../proto/mod.js";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { delivered, overheard } from "../helpers/nats_probes.js";
import {
  credentialFlags,
  startNatsServerWithUsers,
  type NatsWithUsers,
  type UserCredentials,
} from "../helpers/nats_users.js";
import { REPO_ROOT, runProcess, runRingtune, waitUntil } from "../helpers/processes.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const work = mkdtempSync(path.join(tmpdir(), "ringtune-tls-"));
const tls = path.join(work, "tls");
let nats: NatsWithUsers;
const open: NatsConnection[] = [];

/** The flags a process with the certificate `name` (a role, or worker-<id>) connects with. */
const tlsFlags = (name: string) => [
  "--tls-ca",
  path.join(tls, "ca.pem"),
  "--tls-cert",
  path.join(tls, `${name}.pem`),
  "--tls-key",
  path.join(tls, `${name}-key.pem`),
];

/** cluster-up's tls block for the server (cluster_lib.sh's render_tls_conf). */
function tlsBlock(mode: string): string {
  const lib = path.join(REPO_ROOT, "deploy/scripts/cluster_lib.sh");
  const r = spawnSync("bash", ["-c", `source "${lib}" && render_tls_conf "$@"`, "render", tls, mode], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** A connection with the certificate `cert` (none: the CA only) and the credentials `as`. */
async function connectWith(cert: string | null, as?: UserCredentials): Promise<NatsConnection> {
  const nc = await connect({
    servers: nats.server.url,
    timeout: 5000,
    reconnect: false,
    ...(as ?? {}),
    tls: {
      caFile: path.join(tls, "ca.pem"),
      ...(cert ? { certFile: path.join(tls, `${cert}.pem`), keyFile: path.join(tls, `${cert}-key.pem`) } : {}),
    },
  });
  open.push(nc);
  // The server may refuse a connection just after the handshake: a round trip tells.
  await nc.flush();
  return nc;
}

before(async () => {
  const made = await runProcess("bash", [path.join(REPO_ROOT, "deploy/scripts/tls-certs.sh"), tls, "w0", "w1"], {
    timeoutMs: 120_000,
  });
  assert.equal(made.code, 0, made.stderr);
  nats = await startNatsServerWithUsers({ workerIds: ["w0", "w1"], config: [tlsBlock("verify_and_map")] });
});

after(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => {})));
  await killAllWorkerProcesses();
  await killAllCoordinatorProcesses();
  await nats?.server.stop();
  rmSync(work, { recursive: true, force: true });
});

test("a coordinator, a worker and submit connect over TLS with client certificates and run a job", async () => {
  const url = nats.server.url;
  const coordinator = CoordinatorProcess.start(url, [
    ...credentialFlags(nats.as("coordinator")),
    ...tlsFlags("coordinator"),
  ]);
  const worker = WorkerProcess.start(url, "w0", [...credentialFlags(nats.asWorker("w0")), ...tlsFlags("worker-w0")]);
  const client = [...credentialFlags(nats.as("client")), ...tlsFlags("client")];
  const job = path.join(work, "job");
  const spec = path.join(work, "job.json");
  rmSync(job, { recursive: true, force: true });
  writeFileSync(path.join(work, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
  writeFileSync(path.join(work, "train.jsonl"), Array.from({ length: 8 }, (_, i) => `{"text": "row ${i}"}`).join("\n"));
  writeFileSync(
    spec,
    JSON.stringify({
      model: { init: { config: "model.json", seed: 1 } },
      tokenizer: "byte",
      template: "none",
      data: [{ path: "train.jsonl" }],
      seq_len: 32,
      global_batch_rows: 2,
      max_steps: 2,
      workers: 1,
      output: job,
      cache_dir: path.join(work, "cache"),
    }),
  );
  // Ready when `cluster status` (over TLS too) lists the worker.
  await waitUntil(
    async () => {
      const status = await runRingtune(["cluster", "status", "--json", "--nats", url, ...client]);
      return status.code === 0 && (JSON.parse(status.stdout) as { workers: unknown[] }).workers.length > 0;
    },
    `the worker to register over TLS (coordinator: ${coordinator.running}, worker: ${worker.running})`,
    120_000,
  );
  const r = await runRingtune(["submit", spec, "--wait", "--json", "--nats", url, ...client], {
    timeoutMs: 300_000,
  });
  assert.equal(r.code, 0, `submit over TLS:\n${r.stdout}\n${r.stderr}\nworker:\n${worker.log}`);
  const record = JSON.parse(r.stdout.trim().split("\n").pop()!) as { status: string; steps: number };
  assert.equal(record.status, "completed");
  assert.equal(record.steps, 2);
  assert.ok(existsSync(path.join(job, "metrics.jsonl")), "the worker's steps reached the coordinator's output");
  assert.ok(coordinator.running && worker.running);
});

test("a client that does not trust the cluster's CA is refused", async () => {
  await assert.rejects(connect({ servers: nats.server.url, timeout: 5000, reconnect: false, tls: {} }), (e: Error) =>
    /certificate|self[- ]signed|TLS/i.test(`${e.message} ${String(e.cause ?? "")}`),
  );
});

test("a password without its role's certificate, or with another role's, is refused", async () => {
  const refused = async (cert: string | null, as: UserCredentials, what: string) =>
    assert.rejects(connectWith(cert, as), `${what} got in`);
  await refused(null, nats.as("coordinator"), "the coordinator's password without a certificate");
  await refused("client", nats.as("coordinator"), "the client's certificate with the coordinator's password");
  await refused("serve", nats.as("coordinator"), "serve's certificate with the coordinator's password");
  await refused("worker-w1", nats.asWorker("w0"), "worker w1's certificate with worker w0's password");
  await refused("worker-w1", nats.as("coordinator"), "worker w1's certificate with the coordinator's password");
  await refused(
    "client",
    { ...nats.as("client"), pass: "p-guessed" },
    "the client's certificate with a wrong password",
  );
  await refused("worker", nats.asWorker("w0"), "the shared worker certificate (no such user here)");
  // the controls: each certificate with its own user's password gets in
  await connectWith("coordinator", nats.as("coordinator"));
  await connectWith("client", nats.as("client"));
  await connectWith("worker-w1", nats.asWorker("w1"));
});

test("worker w1's certificate cannot speak for worker w0 or read the coordinator's subjects; the client's cannot command", async () => {
  const spy = await connectWith("coordinator", nats.as("coordinator"));
  const w1 = await connectWith("worker-w1", nats.asWorker("w1"));
  const client = await connectWith("client", nats.as("client"));
  const probes: [string, Promise<number>][] = [
    ["w1 publishes w0's heartbeat", delivered(subjects.workerHeartbeat("w0"), w1, spy)],
    ["w1 registers as w0", delivered(subjects.workerRegister("w0"), w1, spy)],
    [
      "w1 reads w0's commands",
      overheard("ringtune.worker.w0.cmd.*", jobSubjects.workerCommand("w0", "assign"), w1, spy),
    ],
    ["w1 reads job submissions", overheard(jobSubjects.submit, jobSubjects.submit, w1, spy)],
    ["w1 reads every heartbeat", overheard(subjects.workerHeartbeatAll, subjects.workerHeartbeat("w0"), w1, spy)],
    ["the client commands a worker", delivered(jobSubjects.workerCommand("w0", "step"), client, spy)],
    ["the client reads job submissions", overheard(jobSubjects.submit, jobSubjects.submit, client, spy)],
    ["the client answers as the coordinator", delivered("_INBOX_coordinator.forged", client, spy)],
  ];
  const reached = await Promise.all(probes.map(async ([what, n]) => [what, await n] as const));
  assert.deepEqual(
    reached.filter(([, n]) => n > 0),
    [],
  );
  // the controls: w1 heartbeats on its own subject, the client submits
  assert.equal(await delivered(subjects.workerHeartbeat("w1"), w1, spy), 1);
  assert.equal(await delivered(jobSubjects.submit, client, spy), 1);
});

test("a client with the CA but no client certificate is refused by the server", async () => {
  await assert.rejects(connectWith(null, nats.as("client")));
  await assert.rejects(connectWith(null));
});

test("a local cluster's credentials file with TLS files gives the user and the certificate; an explicit one keeps the user", () => {
  const runDir = path.join(work, "run");
  mkdirSync(path.join(runDir, "auth"), { recursive: true });
  const file = (role: string) => path.join(tls, `${role}.pem`);
  writeFileSync(
    path.join(runDir, "auth", "client.env"),
    `NATS_USER=client\nNATS_PASSWORD=pw\nNATS_CA=${file("ca")}\nNATS_CERT=${file("client")}\nNATS_KEY=${file("client-key")}\n`,
  );
  const env = { RINGTUNE_RUN_DIR: runDir };
  const local = natsAuth({}, "client", env, () => {});
  assert.equal(local.options.user, "client");
  assert.deepEqual(local.options.tls, { caFile: file("ca"), certFile: file("client"), keyFile: file("client-key") });
  const explicit = natsAuth(
    { "tls-ca": "/x/ca.pem", "tls-cert": "/x/c.pem", "tls-key": "/x/k.pem" },
    "client",
    env,
    () => {},
  );
  assert.equal(explicit.options.user, "client", "the certificate names no user: the local one is still used");
  assert.deepEqual(explicit.options.tls, { caFile: "/x/ca.pem", certFile: "/x/c.pem", keyFile: "/x/k.pem" });
});
