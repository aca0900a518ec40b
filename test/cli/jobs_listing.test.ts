// `ringtune jobs` while a job rewrites its record many times a second (a fast job reports every step):
// the listing must still end, every time, with every job in the bucket and none that was deleted.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Kvm, type KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { JOBS_BUCKET, encodeJobRecord, type JobRecordBody } from "../../proto/mod.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { runRingtune } from "../helpers/processes.js";

let server: NatsServer;
let nc: NatsConnection;
let kv: KV;
let writing = true;
let writer: Promise<void>;

function record(id: string, step: number): JobRecordBody {
  const now = new Date().toISOString();
  return {
    id,
    status: "running",
    spec: {},
    base_dir: "/tmp",
    created_at: id === "job-a" ? "2026-01-01T00:00:00.000Z" : "2026-01-02T00:00:00.000Z",
    updated_at: now,
    step,
    total_steps: 1_000_000,
    train_loss: {},
    output: `/tmp/runs/${id}`,
    workers: ["worker-0"],
  };
}

before(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  kv = await new Kvm(nc).create(JOBS_BUCKET, { history: 1 });
  await kv.put("job-a", encodeJobRecord(record("job-a", 0)));
  await kv.put("job-gone", encodeJobRecord(record("job-gone", 0)));
  await kv.delete("job-gone");
  // The updates never pause: there is always one pending for a reader that started a moment ago.
  writer = (async () => {
    for (let step = 1; writing; step++) await kv.put("job-b", encodeJobRecord(record("job-b", step)));
  })();
});

after(async () => {
  writing = false;
  await writer.catch(() => undefined);
  await nc?.close();
  await server?.stop();
});

test("jobs ends and lists every job while one record is rewritten without pause", async () => {
  for (let i = 0; i < 5; i++) {
    const r = await runRingtune(["jobs", "--json"], {
      env: { NATS_URL: server.url, RINGTUNE_INSECURE: "1" },
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const ids = r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { id: string }).id);
    assert.deepEqual(ids, ["job-a", "job-b"], "oldest first, the deleted job left out");
  }
});
