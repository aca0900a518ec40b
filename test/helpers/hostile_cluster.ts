// One cluster of real processes for a file of attacks: a nats-server with the cluster's users and
// permissions (deploy/nats/auth.conf), `ringtune coordinator` and `ringtune worker` processes under their
// own users, started before the file's first test and stopped after its last. An attack ends with
// stillServing(): the coordinator process alive and answering, every worker registered and idle, and nothing
// outside the cluster's data and output root changed. The root lies in a private temp folder beside a
// sentinel folder of files; that folder, the root's parent and everything else in it are snapshotted before
// the processes start and compared after every probe.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  ClusterStatusReply,
  ClusterStatusRequest,
  decodeMessage,
  encodeMessage,
  jobSubjects,
} from "../../proto/mod.js";
import { CoordinatorProcess } from "./coordinator_process.js";
import { rawRequest } from "./json_requests.js";
import { assertUntouched, snapshotOutside, type TreeSnapshot } from "./untouched_outside.js";
import { credentialFlags, startNatsServerWithUsers, type NatsWithUsers, type Role } from "./nats_users.js";
import { WorkerProcess } from "./worker_process.js";

export interface HostileCluster {
  readonly users: NatsWithUsers;
  readonly url: string;
  readonly coordinator: CoordinatorProcess;
  readonly workers: WorkerProcess[];
  /** The coordinator's and workers' data and output root: jobs' files belong beneath it. */
  readonly root: string;
  /** A connection under a role's credentials (closed after the file). */
  open(role: Role): Promise<NatsConnection>;
  /**
   * Asserts the coordinator process runs, answers the job API and sees every worker idle, and that nothing
   * outside the root (in its temp folder, the sentinel folder included) was created, removed or changed.
   */
  stillServing(): Promise<void>;
}

export interface HostileClusterOptions {
  workerIds?: string[];
  /** runs before the coordinator starts (to plant what an older coordinator left in JetStream, say) */
  beforeCoordinator?: (url: string, users: NatsWithUsers) => Promise<void>;
  /** the coordinator's and workers' data and output root, in place of a fresh folder in the cluster's temp folder */
  root?: string;
}

/** The cluster, readable once the file's `before` hook has run. */
export function hostileClusterForFile(options: HostileClusterOptions = {}): HostileCluster {
  const workerIds = options.workerIds ?? ["w0"];
  const connections: NatsConnection[] = [];
  const state = {} as { users: NatsWithUsers; coordinator: CoordinatorProcess; workers: WorkerProcess[] };
  let client: NatsConnection | undefined;
  // Made at once, so a file's fixtures can be written beneath the root before its tests run.
  const sandbox = mkdtempSync(path.join(tmpdir(), "ringtune-hostile-"));
  const root = options.root ?? path.join(sandbox, "root");
  mkdirSync(root, { recursive: true });
  const sentinel = path.join(sandbox, "outside");
  mkdirSync(path.join(sentinel, "nested"), { recursive: true });
  writeFileSync(path.join(sentinel, "notes.txt"), "nothing a probe may touch\n");
  writeFileSync(path.join(sentinel, "nested", "weights.bin"), Buffer.alloc(64, 7));
  let outsideAtStart: TreeSnapshot | undefined;

  const cluster: HostileCluster = {
    get users() {
      return state.users;
    },
    get url() {
      return state.users.server.url;
    },
    get coordinator() {
      return state.coordinator;
    },
    get workers() {
      return state.workers;
    },
    root,
    async open(role) {
      const nc = await connect({ servers: state.users.server.url, ...state.users.as(role) });
      connections.push(nc);
      return nc;
    },
    async stillServing() {
      assert.ok(state.coordinator.running, "the coordinator process exited");
      client ??= await cluster.open("client");
      const list = await rawRequest(client, jobSubjects.list, {});
      assert.equal(list.json.ok, true, JSON.stringify(list.json).slice(0, 300));
      const status = decodeMessage(
        ClusterStatusReply,
        (await client.request(jobSubjects.clusterStatus, encodeMessage(ClusterStatusRequest, {}), { timeout: 5000 }))
          .data,
      );
      const idle = status.workers.filter((w) => w.state === "idle").map((w) => w.worker_id);
      for (const id of workerIds) assert.ok(idle.includes(id), `worker ${id} is not idle: ${JSON.stringify(status)}`);
      if (outsideAtStart) assertUntouched(outsideAtStart, snapshotOutside([sandbox], [root]));
    },
  };

  before(async () => {
    state.users = await startNatsServerWithUsers({ maxPayload: 8 * 1024 * 1024, workerIds });
    const url = state.users.server.url;
    await options.beforeCoordinator?.(url, state.users);
    outsideAtStart = snapshotOutside([sandbox], [root]);
    // given last, these roots replace the helpers' default ones
    const roots = ["--data-root", root, "--output-root", root];
    state.coordinator = CoordinatorProcess.start(url, [...credentialFlags(state.users.as("coordinator")), ...roots]);
    state.workers = workerIds.map((id) =>
      WorkerProcess.start(url, id, [...credentialFlags(state.users.asWorker(id)), ...roots]),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await cluster.stillServing();
        return;
      } catch (err) {
        if (Date.now() > deadline || !state.coordinator.running) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  });

  after(async () => {
    await Promise.all(connections.map((nc) => nc.close().catch(() => {})));
    await Promise.all((state.workers ?? []).map((w) => w.kill()));
    await state.coordinator?.kill9();
    await state.users?.server.stop();
    rmSync(sandbox, { recursive: true, force: true });
  });
  return cluster;
}
