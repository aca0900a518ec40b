// Which data plane a ring formation's gradients use, and under sequence parallelism which one each group's
// attention blocks use. NATS stays the control plane either way. A ring whose workers all compute on CUDA
// devices and all open libnccl.so.2 gets NCCL: its first rank makes the epoch's unique id, sealed with the
// ring's secret, and every assignment carries it. A sequence-parallel group is judged on its own members the
// same way: its first rank makes the group's id, sealed for the group's ring id, and the group's assignments
// carry it. Any CPU worker, or any node without NCCL, keeps the ring (or the group) on host staging over TCP,
// and the record says why.
import { clipText, sequenceGroupOf, sequenceGroupRing, type TransportKind } from "../../proto/mod.js";
import type { Ring } from "./ring.js";

/** A probe takes no long work on the worker: an unanswered one means the worker is busy or gone. */
const PROBE_TIMEOUT_MS = 60_000;
/** The most characters of a worker's reason a description repeats (the record keeps one per group). */
const REASON_LIMIT = 500;

export interface DataPlaneChoice {
  /** the sealed NCCL unique id every assignment carries; absent: host staging */
  ncclId?: Uint8Array;
  /** for the job's record and message: "nccl", or "tcp (host staging: w1 computes on cpu)" */
  description: string;
  /** under sequence parallelism, by group: the group's sealed NCCL id (absent: its TCP link) */
  sequenceNcclIds?: (Uint8Array | undefined)[];
  /** under sequence parallelism, by group: "nccl", or "tcp (host staging: why)" */
  sequenceDescriptions?: string[];
}

/** Device labels as the record holds them ("cuda:0 (NVIDIA H100)", "cuda-emu (...)", "cpu (...)"). */
function onCuda(label: string | undefined): boolean {
  return label !== undefined && (label.startsWith("cuda:") || label.startsWith("cuda-emu"));
}

type ProbeReply = { nccl?: boolean; reason?: string; nccl_id?: Uint8Array; sequence_nccl_id?: Uint8Array };

/** "" when every rank of `ranks` can join NCCL (as the probe found), else why not. */
function whyNotNccl(
  ring: Ring,
  ranks: readonly number[],
  deviceOf: ((worker: string) => string | undefined) | undefined,
  replies: readonly (ProbeReply | undefined)[] | Error,
): string {
  const cpu = ranks.find((r) => !onCuda(deviceOf?.(ring.workers[r]!)));
  if (cpu !== undefined) {
    const worker = ring.workers[cpu]!;
    return `${worker} computes on ${deviceOf?.(worker) ?? "an unknown device"}`;
  }
  if (replies instanceof Error) return `the NCCL probe failed: ${replies.message}`;
  const without = ranks.find((r) => !replies[r]?.nccl);
  if (without !== undefined)
    return `${ring.workers[without]}: ${clipText(replies[without]?.reason ?? "no NCCL", REASON_LIMIT)}`;
  return "";
}

export async function chooseDataPlane(
  ring: Ring,
  o: {
    job: string;
    ringId: string;
    ringSecret: Uint8Array;
    transport: TransportKind;
    deviceOf?: (worker: string) => string | undefined;
    /** workers per sequence-parallel group; absent or 1: none */
    sequenceParallel?: number;
  },
): Promise<DataPlaneChoice> {
  const sp = o.sequenceParallel ?? 1;
  const allRanks = ring.workers.map((_, rank) => rank);
  const groups =
    sp > 1 ? Array.from({ length: Math.floor(ring.size / sp) }, (_, g) => allRanks.slice(g * sp, (g + 1) * sp)) : [];
  const cuda = (rank: number) => onCuda(o.deviceOf?.(ring.workers[rank]!));
  const ringOnCuda = ring.size >= 2 && allRanks.every(cuda);
  const groupOnCuda = groups.map((ranks) => ranks.every(cuda));
  // Only a worker whose ring or group could run on NCCL is asked: a CPU worker's answer would change nothing.
  const probed = (rank: number) => ringOnCuda || groupOnCuda[sequenceGroupOf(rank, sp).group] === true;
  let replies: (ProbeReply | undefined)[] | Error;
  try {
    replies = allRanks.some(probed)
      ? await ring.all(async (rank) => {
          if (!probed(rank)) return undefined;
          const { group, rank: inGroup } = sequenceGroupOf(rank, sp);
          const createNcclId = ringOnCuda && rank === 0;
          const groupRing = inGroup === 0 && groupOnCuda[group] ? sequenceGroupRing(o.ringId, group) : undefined;
          return ring.send(
            rank,
            "data_plane",
            {
              job: o.job,
              ring: o.ringId,
              create_nccl_id: createNcclId,
              sequence_group_ring: groupRing,
              ring_secret: createNcclId || groupRing ? Uint8Array.from(o.ringSecret) : undefined,
            },
            PROBE_TIMEOUT_MS,
          );
        })
      : [];
  } catch (err) {
    replies = err as Error;
  }
  const staged = (why: string) => `${o.transport} (host staging: ${why})`;
  const choice: DataPlaneChoice = { description: "" };
  if (ring.size < 2) choice.description = "none (one worker)";
  else {
    const why = whyNotNccl(ring, allRanks, o.deviceOf, replies);
    const id = Array.isArray(replies) ? replies[0]?.nccl_id : undefined;
    if (why) choice.description = staged(why);
    else if (!id) choice.description = staged(`${ring.workers[0]} made no NCCL id`);
    else Object.assign(choice, { ncclId: id, description: "nccl" });
  }
  if (groups.length > 0) {
    // A group's blocks travel over its own TCP link whatever the ring's transport.
    const stagedGroup = (why: string) => ({ id: undefined, description: `tcp (host staging: ${why})` });
    const chosen = groups.map((ranks) => {
      const why = whyNotNccl(ring, ranks, o.deviceOf, replies);
      const id = Array.isArray(replies) ? replies[ranks[0]!]?.sequence_nccl_id : undefined;
      if (why) return stagedGroup(why);
      if (!id) return stagedGroup(`${ring.workers[ranks[0]!]} made no NCCL id`);
      return { id, description: "nccl" };
    });
    choice.sequenceNcclIds = chosen.map((c) => c.id);
    choice.sequenceDescriptions = chosen.map((c) => c.description);
  }
  return choice;
}

/** The groups' data planes in a line: "nccl" when all agree, else each group's. */
export function describeSequenceDataPlanes(descriptions: readonly string[]): string {
  if (descriptions.every((d) => d === descriptions[0])) return descriptions[0] ?? "";
  return descriptions.map((d, g) => `group ${g} ${d}`).join("; ");
}
