// Which data plane each sequence-parallel group gets: the coordinator's choice from the workers' devices and
// their NCCL probes (who is asked, who makes which id), and the worker's refusal of a group id sealed for
// another group or ring. The NCCL path itself runs in test/train/nccl_ring.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { Ring } from "../../coordinator/train/ring.js";
import { chooseDataPlane, describeSequenceDataPlanes } from "../../coordinator/train/data_plane.js";
import { pino } from "pino";
import {
  decodeCommandReply,
  encodeCommandRequest,
  type CommandReply,
  type CommandRequest,
  type WorkerCommand,
} from "../../proto/mod.js";
import { JobRunner } from "../../worker/job_runner.js";
import { NCCL_ID_BYTES, sealNcclId } from "../../worker/allreduce/mod.js";
import { joinNcclSequenceGroup } from "../../worker/sequence_parallel/nccl_group.js";

type Probe = CommandRequest<"data_plane">;

/** A ring whose workers answer the data-plane probe from a table (no NATS): each id names its maker. */
class ProbedRing extends Ring {
  readonly probes: { rank: number; probe: Probe }[] = [];

  constructor(
    workers: string[],
    private readonly withoutNccl: ReadonlySet<string> = new Set(),
  ) {
    super(undefined as unknown as NatsConnection, workers, () => new Promise<never>(() => {}));
  }

  override send<C extends WorkerCommand>(rank: number, name: C, body: CommandRequest<C>): Promise<CommandReply<C>> {
    assert.equal(name, "data_plane");
    const probe = body as Probe;
    this.probes.push({ rank, probe });
    const worker = this.workers[rank]!;
    const made = (what: string) => new TextEncoder().encode(`${what} by ${worker}`);
    const reply = this.withoutNccl.has(worker)
      ? { ok: true, nccl: false, reason: "libnccl.so.2 not found" }
      : {
          ok: true,
          nccl: true,
          nccl_id: probe.create_nccl_id ? made(`ring ${probe.ring}`) : undefined,
          sequence_nccl_id: probe.sequence_group_ring ? made(`group ${probe.sequence_group_ring}`) : undefined,
        };
    return Promise.resolve(reply as CommandReply<C>);
  }
}

const secret = randomBytes(32);
const choose = (ring: Ring, devices: Record<string, string>, sequenceParallel: number) =>
  chooseDataPlane(ring, {
    job: "j",
    ringId: "r1",
    ringSecret: secret,
    transport: "tcp",
    deviceOf: (w) => devices[w],
    sequenceParallel,
  });
const text = (b: Uint8Array | undefined) => b && new TextDecoder().decode(b);

test("an all-GPU ring under SP 2: the ring and each group get NCCL, each id made by its first rank", async () => {
  const ring = new ProbedRing(["w0", "w1", "w2", "w3"]);
  const gpu = { w0: "cuda-emu (x)", w1: "cuda:0 (H100)", w2: "cuda:1 (H100)", w3: "cuda-emu (x)" };
  const plane = await choose(ring, gpu, 2);
  assert.equal(plane.description, "nccl");
  assert.equal(text(plane.ncclId), "ring r1 by w0");
  assert.deepEqual(plane.sequenceDescriptions, ["nccl", "nccl"]);
  assert.deepEqual(plane.sequenceNcclIds?.map(text), ["group r1-sp0 by w0", "group r1-sp1 by w2"]);
  // Only the id makers are handed the secret that seals the ids.
  for (const { rank, probe } of ring.probes) assert.equal(probe.ring_secret !== undefined, rank % 2 === 0);
  assert.equal(describeSequenceDataPlanes(plane.sequenceDescriptions!), "nccl");
});

test("a group with a CPU worker or a node without NCCL stays on TCP; an all-GPU group beside it gets NCCL", async () => {
  const devices = { w0: "cuda-emu (x)", w1: "cuda-emu (x)", w2: "cpu (x86)", w3: "cuda-emu (x)" };
  const mixed = new ProbedRing(["w0", "w1", "w2", "w3"]);
  const plane = await choose(mixed, devices, 2);
  assert.equal(plane.description, "tcp (host staging: w2 computes on cpu (x86))");
  assert.equal(plane.ncclId, undefined);
  assert.deepEqual(plane.sequenceDescriptions, ["nccl", "tcp (host staging: w2 computes on cpu (x86))"]);
  assert.deepEqual(plane.sequenceNcclIds?.map(text), ["group r1-sp0 by w0", undefined]);
  // The CPU group's workers are not asked; the ring's id is made by nobody.
  assert.deepEqual(
    mixed.probes.map(({ rank, probe }) => [rank, probe.create_nccl_id, probe.sequence_group_ring]),
    [
      [0, false, "r1-sp0"],
      [1, false, undefined],
    ],
  );
  assert.equal(
    describeSequenceDataPlanes(plane.sequenceDescriptions!),
    "group 0 nccl; group 1 tcp (host staging: w2 computes on cpu (x86))",
  );

  const gpu = { ...devices, w2: "cuda-emu (x)" };
  const noNccl = await choose(new ProbedRing(["w0", "w1", "w2", "w3"], new Set(["w1"])), gpu, 2);
  assert.equal(noNccl.description, "tcp (host staging: w1: libnccl.so.2 not found)");
  assert.deepEqual(noNccl.sequenceDescriptions, ["tcp (host staging: w1: libnccl.so.2 not found)", "nccl"]);
  assert.deepEqual(noNccl.sequenceNcclIds?.map(text), [undefined, "group r1-sp1 by w2"]);

  // Without sequence parallelism nothing about groups is said.
  const plain = await choose(new ProbedRing(["w0", "w1"]), gpu, 1);
  assert.equal(plain.description, "nccl");
  assert.equal(plain.sequenceDescriptions, undefined);
});

test("a worker opens only the id sealed for its own group of its own ring with the ring's secret", async () => {
  const id = randomBytes(NCCL_ID_BYTES);
  const member = {
    ring: "r1",
    rank: 3,
    size: 2,
    secret: secret as Uint8Array | undefined,
    timeoutMs: 1000,
    device: "cpu",
  };
  const join = (sealedId: Uint8Array, m = member) => joinNcclSequenceGroup({ ...m, sealedId });
  const refused =
    /sequence-parallel group 1 \(ring r1\): rank 1: assign: sequence_nccl_id was not sealed for ring r1-sp1/;
  await assert.rejects(join(sealNcclId(secret, "r1-sp0", id)), refused, "another group's id");
  await assert.rejects(join(sealNcclId(secret, "r1", id)), refused, "the ring's own id");
  await assert.rejects(join(sealNcclId(secret, "r2-sp1", id)), refused, "another ring's group");
  await assert.rejects(join(sealNcclId(randomBytes(32), "r1-sp1", id)), refused, "another secret");
  await assert.rejects(join(id), refused, "an id not sealed at all");
  await assert.rejects(
    join(sealNcclId(secret, "r1-sp1", id), { ...member, secret: undefined }),
    /without the ring secret/,
  );
  // The right seal opens, and the join goes on to the communicator (a CPU model has no NCCL data plane).
  await assert.rejects(join(sealNcclId(secret, "r1-sp1", id)), /rank 1: NCCL: no data plane for a model on cpu/);
});

test("a worker refuses, before building anything, a group id it could not use", async () => {
  const runner = new JobRunner(undefined as unknown as NatsConnection, pino({ level: "silent" }));
  const assign: CommandRequest<"assign"> = {
    job: "j1",
    ring: "r1",
    rank: 0,
    size: 2,
    transport: "tcp",
    // a model that would fail to load: the refusal must come first
    model: { path: "/nonexistent/model" },
    optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip: 1 },
    ring_secret: Uint8Array.from(secret),
    sequence_nccl_id: Uint8Array.from(sealNcclId(secret, "r1-sp0", randomBytes(NCCL_ID_BYTES))),
  };
  const reply = async (m: CommandRequest<"assign">) =>
    decodeCommandReply("assign", await runner.handle("assign", encodeCommandRequest("assign", m)));
  const noGroups = await reply(assign);
  assert.equal(noGroups.ok, false);
  assert.equal(noGroups.error, "assign: sequence_nccl_id comes without sequence_parallel");
  const noSecret = await reply({ ...assign, sequence_parallel: 2, ring_secret: undefined });
  assert.equal(noSecret.error, "assign: sequence_nccl_id comes without the ring secret that opens it");
  // With both, the assign goes on to build its model (which fails here: the check let it through).
  assert.match((await reply({ ...assign, sequence_parallel: 2 })).error ?? "", /model/);
});
