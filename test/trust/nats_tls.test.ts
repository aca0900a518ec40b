// NATS over TLS with client certificates, as `make cluster-up TLS=1` sets it up: the CA and certificates
// come from deploy/scripts/tls-certs.sh, the server requires a client certificate of that CA (verify), and
// a coordinator, a worker and `ringtune submit` given --tls-ca/--tls-cert/--tls-key run a tiny job through
// it. A client without the CA, or without a client certificate, is refused.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { natsAuth } from "../../cli/nats_credentials.js";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { REPO_ROOT, runProcess, runRingtune, waitUntil } from "../helpers/processes.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const work = mkdtempSync(path.join(tmpdir(), "ringtune-tls-"));
const tls = path.join(work, "tls");
let server: NatsServer;

/** The flags a process of `role` connects with. */
const tlsFlags = (role: string) => [
  "--tls-ca",
  path.join(tls, "ca.pem"),
  "--tls-cert",
  path.join(tls, `${role}.pem`),
  "--tls-key",
  path.join(tls, `${role}-key.pem`),
];

before(async () => {
  const made = await runProcess("bash", [path.join(REPO_ROOT, "deploy/scripts/tls-certs.sh"), tls], {
    timeoutMs: 120_000,
  });
  assert.equal(made.code, 0, made.stderr);
  server = await startNatsServer({
    config: [
      "tls {",
      `  cert_file: "${path.join(tls, "server.pem")}"`,
      `  key_file: "${path.join(tls, "server-key.pem")}"`,
      `  ca_file: "${path.join(tls, "ca.pem")}"`,
      "  verify: true",
      "  timeout: 5",
      "}",
    ],
  });
});

after(async () => {
  await killAllWorkerProcesses();
  await killAllCoordinatorProcesses();
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

test("a coordinator, a worker and submit connect over TLS with client certificates and run a job", async () => {
  const coordinator = CoordinatorProcess.start(server.url, tlsFlags("coordinator"));
  const worker = WorkerProcess.start(server.url, "tls-w0", tlsFlags("worker"));
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
    }),
  );
  // Ready when `cluster status` (over TLS too) lists the worker.
  await waitUntil(
    async () => {
      const status = await runRingtune([
        "cluster",
        "status",
        "--json",
        "--nats",
        server.url,
        "--insecure",
        ...tlsFlags("client"),
      ]);
      return status.code === 0 && (JSON.parse(status.stdout) as { workers: unknown[] }).workers.length > 0;
    },
    `the worker to register over TLS (coordinator: ${coordinator.running}, worker: ${worker.running})`,
    120_000,
  );
  const r = await runRingtune(
    ["submit", spec, "--wait", "--json", "--nats", server.url, "--insecure", ...tlsFlags("client")],
    {
      timeoutMs: 300_000,
    },
  );
  assert.equal(r.code, 0, `submit over TLS:\n${r.stdout}\n${r.stderr}\nworker:\n${worker.log}`);
  const record = JSON.parse(r.stdout.trim().split("\n").pop()!) as { status: string; steps: number };
  assert.equal(record.status, "completed");
  assert.equal(record.steps, 2);
  assert.ok(existsSync(path.join(job, "metrics.jsonl")), "the worker's steps reached the coordinator's output");
  assert.ok(coordinator.running && worker.running);
});

test("a client that does not trust the cluster's CA is refused", async () => {
  await assert.rejects(connect({ servers: server.url, timeout: 5000, reconnect: false, tls: {} }), (e: Error) =>
    /certificate|self[- ]signed|TLS/i.test(`${e.message} ${String(e.cause ?? "")}`),
  );
});

test("a client with the CA but no client certificate is refused by the server", async () => {
  await assert.rejects(
    (async () => {
      const nc = await connect({
        servers: server.url,
        timeout: 5000,
        reconnect: false,
        tls: { caFile: path.join(tls, "ca.pem") },
      });
      // The server may close the connection just after the handshake instead of failing it.
      await nc.flush();
      await nc.close();
    })(),
  );
  // The same connection with a client certificate gets in: the refusal was for the missing certificate.
  const nc = await connect({
    servers: server.url,
    timeout: 5000,
    reconnect: false,
    tls: {
      caFile: path.join(tls, "ca.pem"),
      certFile: path.join(tls, "client.pem"),
      keyFile: path.join(tls, "client-key.pem"),
    },
  });
  await nc.flush();
  await nc.close();
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
