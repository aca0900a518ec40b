// Every NATS credential of a `make cluster-up` cluster (client, serve, a worker) tried against every subject
// family ringtune uses, publishing and subscribing, on a real nats-server with the users cluster-up renders
// (render_auth_conf, one user per worker). The table names, per family, who may publish and who may
// subscribe; every other pair is a probe that must reach nothing, and every allowed pair is a control that
// must reach its subject, so a probe that reports nothing is the permission at work and not a broken probe.
// The victim of cross-worker probes is w0; the attacking worker is w1.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { JOBS_BUCKET, jobSubjects, subjects } from "../../proto/mod.js";
import { serveSubjects } from "../../proto/serve_subjects.js";
import { delivered, overheard } from "../helpers/nats_probes.js";
import { startNatsServerWithUsers, type NatsWithUsers } from "../helpers/nats_users.js";

type Who = "client" | "serve" | "w1";
const ATTACKERS: Who[] = ["client", "serve", "w1"];

interface Family {
  name: string;
  /** a subject of the family to publish on, and who may */
  publish?: { subject: string; allowed: Who[] };
  /** a pattern to subscribe to, a subject of the family the coordinator publishes on, and who may read it */
  subscribe?: { pattern: string; subject: string; allowed: Who[] };
}

const KV = `$KV.${JOBS_BUCKET}`;
const STREAM = `KV_${JOBS_BUCKET}`;
const FAMILIES: Family[] = [
  {
    name: "another worker's commands (its assignment and ring secret, its batches)",
    publish: { subject: jobSubjects.workerCommand("w0", "step"), allowed: [] },
    subscribe: { pattern: "ringtune.worker.w0.cmd.*", subject: jobSubjects.workerCommand("w0", "assign"), allowed: [] },
  },
  {
    name: "every worker's commands",
    subscribe: { pattern: "ringtune.worker.*.cmd.>", subject: jobSubjects.workerCommand("w0", "step"), allowed: [] },
  },
  {
    name: "another worker's registration",
    publish: { subject: subjects.workerRegister("w0"), allowed: [] },
    subscribe: { pattern: subjects.workerRegisterAll, subject: subjects.workerRegister("w0"), allowed: [] },
  },
  {
    name: "another worker's heartbeats",
    publish: { subject: subjects.workerHeartbeat("w0"), allowed: [] },
    subscribe: { pattern: subjects.workerHeartbeatAll, subject: subjects.workerHeartbeat("w0"), allowed: [] },
  },
  {
    name: "the coordinator's hello (every worker registers again)",
    publish: { subject: jobSubjects.coordinatorHello, allowed: [] },
    subscribe: { pattern: jobSubjects.coordinatorHello, subject: jobSubjects.coordinatorHello, allowed: ["w1"] },
  },
  {
    name: "job submission (and taking others' specs as the coordinator would)",
    publish: { subject: jobSubjects.submit, allowed: ["client"] },
    subscribe: { pattern: jobSubjects.submit, subject: jobSubjects.submit, allowed: [] },
  },
  {
    name: "job cancel",
    publish: { subject: jobSubjects.cancel, allowed: ["client"] },
    subscribe: { pattern: jobSubjects.cancel, subject: jobSubjects.cancel, allowed: [] },
  },
  {
    name: "job list and get",
    publish: { subject: jobSubjects.list, allowed: ["client"] },
    subscribe: { pattern: "ringtune.job.>", subject: jobSubjects.get, allowed: [] },
  },
  {
    name: "cluster status",
    publish: { subject: jobSubjects.clusterStatus, allowed: ["client", "w1"] },
    subscribe: { pattern: jobSubjects.clusterStatus, subject: jobSubjects.clusterStatus, allowed: [] },
  },
  {
    name: "ring traffic (sealed with the ring's secret)",
    publish: { subject: subjects.edgeChunks("r1", 0, 1), allowed: ["w1"] },
    subscribe: { pattern: "ringtune.ring.>", subject: subjects.peerAddress("r1", 0), allowed: ["w1"] },
  },
  {
    name: "model requests (chat completions, adapters)",
    publish: { subject: serveSubjects.loadAdapter("base"), allowed: [] },
    subscribe: { pattern: "ringtune.serve.>", subject: serveSubjects.chat("base"), allowed: ["serve", "w1"] },
  },
  {
    name: "job records: writing one",
    publish: { subject: `${KV}.job-forged`, allowed: [] },
    subscribe: { pattern: `${KV}.>`, subject: `${KV}.job-1`, allowed: ["client"] },
  },
  {
    name: "job records: reading by DIRECT.GET",
    publish: { subject: `$JS.API.DIRECT.GET.${STREAM}.${KV}.job-1`, allowed: ["client", "serve", "w1"] },
    subscribe: { pattern: "$JS.API.>", subject: `$JS.API.DIRECT.GET.${STREAM}.${KV}.job-1`, allowed: [] },
  },
  {
    name: "JetStream: a consumer delivering where it likes",
    publish: { subject: `$JS.API.CONSUMER.CREATE.${STREAM}`, allowed: [] },
  },
  {
    name: "JetStream: durable consumers",
    publish: { subject: `$JS.API.CONSUMER.DURABLE.CREATE.${STREAM}.mine`, allowed: [] },
  },
  {
    name: "JetStream: deleting others' consumers",
    publish: { subject: `$JS.API.CONSUMER.DELETE.${STREAM}.someone-elses`, allowed: [] },
  },
  {
    name: "JetStream: purging the job records",
    publish: { subject: `$JS.API.STREAM.PURGE.${STREAM}`, allowed: [] },
  },
  {
    name: "JetStream: deleting the job records' stream",
    publish: { subject: `$JS.API.STREAM.DELETE.${STREAM}`, allowed: [] },
  },
  {
    name: "JetStream: a stream of its own (disk)",
    publish: { subject: "$JS.API.STREAM.CREATE.hoard", allowed: [] },
  },
  {
    name: "the coordinator's replies",
    publish: { subject: "_INBOX_coordinator.forged", allowed: [] },
    subscribe: { pattern: "_INBOX_coordinator.>", subject: "_INBOX_coordinator.r", allowed: [] },
  },
  {
    name: "clients' replies (submit replies, job records)",
    publish: { subject: "_INBOX_client.forged", allowed: [] },
    subscribe: { pattern: "_INBOX_client.>", subject: "_INBOX_client.r", allowed: ["client"] },
  },
  {
    name: "serve's replies",
    publish: { subject: "_INBOX_serve.forged", allowed: [] },
    subscribe: { pattern: "_INBOX_serve.>", subject: "_INBOX_serve.r", allowed: ["serve"] },
  },
  {
    name: "another worker's replies",
    publish: { subject: "_INBOX_worker-w0.forged", allowed: [] },
    subscribe: { pattern: "_INBOX_worker-w0.>", subject: "_INBOX_worker-w0.r", allowed: [] },
  },
  {
    name: "its own worker replies",
    subscribe: { pattern: "_INBOX_worker-w1.>", subject: "_INBOX_worker-w1.r", allowed: ["w1"] },
  },
  {
    name: "the shared inbox prefix",
    publish: { subject: "_INBOX.forged", allowed: [] },
    subscribe: { pattern: "_INBOX.>", subject: "_INBOX.r", allowed: [] },
  },
  {
    name: "everything",
    publish: { subject: "ringtune.anything.else", allowed: [] },
    subscribe: { pattern: ">", subject: "ringtune.anything.else", allowed: [] },
  },
];

let nats: NatsWithUsers;
const open: NatsConnection[] = [];
async function as(who: Who | "coordinator"): Promise<NatsConnection> {
  const user = who === "w1" ? nats.asWorker("w1") : nats.as(who);
  const nc = await connect({ servers: nats.server.url, ...user });
  open.push(nc);
  return nc;
}

before(async () => {
  nats = await startNatsServerWithUsers({ workerIds: ["w0", "w1"] });
});
after(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => {})));
  await nats?.server.stop();
});

test("every credential against every subject family: denied where the table denies it, reached where it allows", async () => {
  interface Probe {
    who: Who;
    family: string;
    how: "publish" | "subscribe";
    allowed: boolean;
    reached: Promise<number>;
  }
  const probes: Probe[] = [];
  for (const family of FAMILIES)
    for (const who of ATTACKERS) {
      if (family.publish) {
        const { subject, allowed } = family.publish;
        const reached = Promise.all([as(who), as("coordinator")]).then(([nc, spy]) => delivered(subject, nc, spy));
        probes.push({ who, family: family.name, how: "publish", allowed: allowed.includes(who), reached });
      }
      if (family.subscribe) {
        const { pattern, subject, allowed } = family.subscribe;
        const reached = Promise.all([as(who), as("coordinator")]).then(([nc, spy]) =>
          overheard(pattern, subject, nc, spy),
        );
        probes.push({ who, family: family.name, how: "subscribe", allowed: allowed.includes(who), reached });
      }
    }
  const results = await Promise.all(probes.map(async (p) => ({ ...p, reached: (await p.reached) > 0 })));
  const wrong = results
    .filter((r) => r.reached !== r.allowed)
    .map((r) => `${r.who} ${r.how} on ${r.family}: ${r.reached ? "reached" : "did not reach"}`);
  assert.deepEqual(wrong, []);
  const denied = results.filter((r) => !r.allowed).length;
  assert.ok(denied >= 60, `only ${denied} denied probes`);
  // the server still serves: the coordinator's user reads JetStream's account info
  const coordinator = await as("coordinator");
  const info = await coordinator.request("$JS.API.INFO", undefined, { timeout: 2000 });
  assert.match(new TextDecoder().decode(info.data), /"type":"io.nats.jetstream.api.v1.account_info_response"/);
});
