// One active coordinator at a time, against a real nats-server: a second coordinator stands by (serves
// nothing, so a submit is handled once) and takes over when the first gives up its lease; a holder whose
// lease was taken while it was away learns it at its next renewal; a fatal start-up error ends the process
// with a non-zero exit instead of leaving it half up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { Coordinator } from "../../coordinator/main.js";
import { CoordinatorLease, LEASE_BUCKET } from "../../coordinator/lease.js";
import { encodeJobMessage, jobSubjects, JobSubmit, decodeJobReply, JobSubmitReply } from "../../proto/mod.js";
import { freePort, runRingtune, waitUntil } from "../helpers/processes.js";
import type { LogLine } from "../helpers/cluster.js";
import { natsForFile } from "../helpers/nats_for_file.js";

const nats = natsForFile();

function logInto(lines: LogLine[]) {
  return pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as LogLine) });
}

test("a second coordinator stands by, serves nothing while the first is active, and takes over when it stops", async () => {
  const first: LogLine[] = [];
  const second: LogLine[] = [];
  const a = await Coordinator.start({ natsUrl: nats.server.url, log: logInto(first), leaseTtlMs: 2000 });
  let b: Coordinator | undefined;
  const bStarted = Coordinator.start({ natsUrl: nats.server.url, log: logInto(second), leaseTtlMs: 2000 }).then(
    (c) => (b = c),
  );
  try {
    await waitUntil(async () => second.some((l) => /standing by/.test(l.msg ?? "")), "the standby's log line", 30_000);
    // A submit is answered once, by the active coordinator (this spec is refused: the refusal is the answer).
    const replies: unknown[] = [];
    const inbox = nats.nc.subscribe("_INBOX.faults-once", { callback: (_e, m) => void replies.push(m.data) });
    nats.nc.publish(jobSubjects.submit, encodeJobMessage(JobSubmit, { spec: { bogus_key: 1 } }, "json"), {
      reply: "_INBOX.faults-once",
    });
    await waitUntil(async () => replies.length > 0, "a reply to the submit", 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    inbox.unsubscribe();
    assert.equal(replies.length, 1, "one reply: only the active coordinator serves the job API");
    assert.equal(decodeJobReply(JobSubmitReply, replies[0] as Uint8Array, "json").ok, false);
    assert.equal(b, undefined, "the standby is still waiting");

    await a.close(); // gives the lease up
    await waitUntil(async () => b !== undefined, "the standby to take over", 30_000);
    assert.ok(second.some((l) => l.msg === "coordinator ready"));
  } finally {
    await a.close();
    await (await bStarted.catch(() => undefined))?.close();
  }
});

test("a lease taken over while its holder was away is reported lost at the holder's next renewal", async () => {
  const log = pino({ level: "silent" });
  const held = await CoordinatorLease.acquire(nats.nc, log, 1500);
  let lostReason: string | undefined;
  held.onLost = (why) => (lostReason = why);
  // What a standby does once the holder's lease expired: the key is gone, it creates its own.
  const kv = await new Kvm(nats.nc).open(LEASE_BUCKET);
  await kv.purge("active");
  const other = await CoordinatorLease.acquire(nats.nc, log, 1500);
  try {
    await waitUntil(async () => lostReason !== undefined, "the old holder to notice", 10_000);
    assert.match(lostReason!, /another coordinator took over/);
  } finally {
    await other.release();
    await held.release();
  }
});

test("a coordinator whose NATS server has no JetStream exits non-zero with the reason, instead of hanging", async () => {
  const port = await freePort();
  const bare = spawn(nats.server.bin, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const r = await runRingtune(["coordinator", "--nats", `nats://127.0.0.1:${port}`, "--insecure"], {
      timeoutMs: 60_000,
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ringtune coordinator: .*jetstream/i);
  } finally {
    bare.kill("SIGKILL");
  }
});

test("a coordinator that cannot reach NATS exits non-zero naming the problem", async () => {
  const port = await freePort();
  const r = await runRingtune(["coordinator", "--nats", `nats://127.0.0.1:${port}`, "--insecure"], {
    timeoutMs: 60_000,
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /ringtune coordinator: /);
});
