// The NATS permissions docs/job-api.md gives a job API client are enough, and are enforced: on a server with
// users, the Go client as `client` submits, lists, reads, cancels and follows a job through KV; as
// `reader` (the same without publish on ringtune.job.cancel) its cancel is refused by the server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pino } from "pino";
import { Coordinator } from "../../coordinator/main.js";
import { trainingFixture } from "../helpers/cluster.js";
import { buildGoClient, goUnavailable, runGoClient } from "../helpers/go_client.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";

const KV = "KV_ringtune-jobs";
/** The client permissions as docs/job-api.md lists them. */
const READ_PUBLISH = [
  "ringtune.job.submit",
  "ringtune.job.get",
  "ringtune.job.list",
  `$JS.API.STREAM.INFO.${KV}`,
  `$JS.API.CONSUMER.CREATE.${KV}`,
  `$JS.API.CONSUMER.CREATE.${KV}.>`,
  `$JS.API.CONSUMER.DELETE.${KV}.>`,
  `$JS.API.DIRECT.GET.${KV}.>`,
];
const user = (name: string, publish: string[]) =>
  `{ user: ${name}, password: pw, permissions: { publish: ${JSON.stringify(publish)}, subscribe: ["_INBOX.>"] } }`;

const skip = goUnavailable();
let server: NatsServer;
let coordinator: Coordinator;
let goClient: string;
let dir: string;
let spec: Record<string, unknown>;

before(async () => {
  if (skip) return;
  goClient = await buildGoClient();
  server = await startNatsServer({
    config: [
      "authorization {",
      "  users: [",
      "    { user: admin, password: pw },",
      `    ${user("client", [...READ_PUBLISH, "ringtune.job.cancel"])},`,
      `    ${user("reader", READ_PUBLISH)}`,
      "  ]",
      "}",
      // ringtune's own processes connect without credentials, as admin
      "no_auth_user: admin",
    ],
  });
  coordinator = await Coordinator.start({
    natsUrl: server.url,
    log: pino({ level: "silent" }),
  });
  ({ dir, baseSpec: spec } = trainingFixture());
});

after(async () => {
  await coordinator?.close();
  await server?.stop();
});

function as(name: string, ...args: string[]) {
  return runGoClient(goClient, server.url.replace("nats://", `nats://${name}:pw@`), ["-timeout", "3s", ...args]);
}

test(
  "a client with the permissions of docs/job-api.md submits, lists, reads, cancels and follows a job",
  { skip },
  async () => {
    const request = path.join(dir, "request.json");
    // No worker is registered: the job waits until it is canceled.
    writeFileSync(request, JSON.stringify({ spec: { ...spec, output: "out" }, base_dir: dir }));
    const submitted = await as("client", "submit", request);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    const listed = await as("client", "list");
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { id: string }[]).map((j) => j.id),
      [id],
    );
    assert.equal((JSON.parse((await as("client", "get", id)).stdout) as { id: string }).id, id);

    const denied = await as("reader", "cancel", id);
    assert.notEqual(denied.code, 0, "the reader may not cancel");
    assert.doesNotMatch(denied.stderr, /"code"/, "the coordinator never saw the request");

    const canceled = await as("client", "cancel", id);
    assert.equal(canceled.code, 0, canceled.stderr);
    for (const who of ["client", "reader"]) {
      const followed = await as(who, "follow", id);
      assert.equal(followed.code, 0, `${who}: ${followed.stderr}`);
      assert.equal((JSON.parse(followed.stdout) as { status: string }).status, "canceled");
    }
  },
);
