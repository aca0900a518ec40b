// The schemas of every wire message. Field names are snake_case: the wire is language-neutral.
import { z } from "zod";
import { defineMessage } from "./codec.js";
import { SubjectToken } from "./subjects.js";

const Rank = z.number().int().min(0);
const Count = z.number().int().min(0);
/** Names one all-reduce call (e.g. "s12-b3": step 12, bucket 3), so concurrent calls never mix chunks. */
export const Tag = z.string().min(1).max(128);
export const TransportKind = z.enum(["tcp", "nats"]);
export type TransportKind = z.infer<typeof TransportKind>;

/**
 * TCP is the default because it measured faster: `make bench-allreduce QUICK=1` (bench/allreduce.ts) on
 * this repo's 2-core machine (AMD EPYC, 2 cores, node 20), 2-4 ranks as separate processes, 4 and 32 MB,
 * two runs: TCP beat NATS subjects in 12 of 12 cases, median bus bandwidth 143-486 MB/s against 29-62
 * MB/s. Each NATS chunk crosses the server (a hop and two more copies); TCP goes straight to the
 * neighbour. Rerun the benchmark on real nodes before trusting this beyond one machine.
 */
export const DEFAULT_TRANSPORT: TransportKind = "tcp";

// ---- workers ----------------------------------------------------------------------------------------

/** A host name (RFC 1035 allows 253 characters) or an address, as a worker reports it. */
export const HostName = z.string().min(1).max(255);

export const Device = z.object({
  /** cuda-emu: the CUDA backend on the project's CPU emulator (slow: tests and set-up checks) */
  kind: z.enum(["cpu", "cuda", "cuda-emu"]),
  /** the CUDA device number, for kind cuda */
  index: Count.max(1024).optional(),
  name: z.string().max(256), // "AMD EPYC", "NVIDIA H100 80GB HBM3", "CUDA emulator on the CPU: slow"
  /** what the job's per-rank memory must fit in: the GPU's memory for cuda, the host's for cpu and cuda-emu */
  memory_bytes: Count,
  cores: Count, // CPU cores, or streaming multiprocessors on a GPU
});

/** Request on subjects.workerRegister. */
export const WorkerRegister = defineMessage("WorkerRegister", {
  worker_id: SubjectToken,
  host: HostName,
  pid: z.number().int(),
  device: Device,
  /** Data-plane transports this worker can use, best first. */
  transports: z.array(TransportKind).min(1).max(8),
});

export const WorkerRegisterReply = defineMessage("WorkerRegisterReply", {
  ok: z.boolean(),
  error: z.string().optional(),
  heartbeat_ms: z.number().int().positive(),
});

/** Published on subjects.workerHeartbeat(worker_id) every heartbeat_ms. */
export const WorkerHeartbeat = defineMessage("WorkerHeartbeat", {
  worker_id: SubjectToken,
  seq: Count,
  sent_at_ms: z.number(),
  state: z.enum(["idle", "busy"]),
  job: z.string().max(128).optional(),
  /** what a busy worker is doing that takes long, e.g. "loading weights 37%" (absent when nothing is) */
  activity: z.string().max(200).optional(),
  /**
   * why the ring of `job` broke while no command was waiting on it (a neighbour's link closed): the worker
   * says so at once, so the coordinator need not wait for a command to a dead neighbour to time out
   */
  ring_broken: z.string().max(500).optional(),
  /** the device it computes on, as deviceLabel() names it: "cuda:0 (NVIDIA H100 80GB HBM3)", "cuda-emu (...)" */
  device: z.string().max(300).optional(),
  /**
   * device memory free now on a GPU (or the CUDA emulator's arena), as the CUDA runtime counts it; absent on a
   * CPU worker. The total is the registration's device.memory_bytes.
   */
  device_memory_free_bytes: Count.optional(),
  /** a serving worker's models (its base first, then adapters) and its generations running and queued */
  serving: z
    .object({
      base: z.string().min(1).max(128),
      models: z.array(z.string().min(1).max(128)).max(4096),
      running: Count,
      waiting: Count,
    })
    .optional(),
});

/**
 * A heartbeat's activity while an interrupted step's native work winds down: the worker is not idle yet,
 * and nothing new is scheduled on it until a heartbeat says otherwise.
 */
export const STOPPING_ACTIVITY = "stopping";

/** What a serving worker reports in its heartbeat. */
export type ServingStatus = NonNullable<z.infer<typeof WorkerHeartbeat.schema>["serving"]>;

// ---- ring data plane ----------------------------------------------------------------------------------

/** A short binary field (nonce, MAC): bounded so a hello from a stranger stays small. */
const ShortBytes = z.instanceof(Uint8Array).refine((b) => b.length <= 64, "at most 64 bytes");

/**
 * Request on subjects.peerAddress(ring, rank): who asks. In a ring with a secret, `nonce` is fresh per
 * request and the answer must carry it back (both sealed with the secret, peer_address.ts).
 */
export const PeerAddressRequest = defineMessage("PeerAddressRequest", {
  ring: SubjectToken,
  rank: Rank,
  nonce: ShortBytes.optional(),
});

/** A ring member's data-plane TCP listener; `nonce` is the request's it answers (rings with a secret). */
export const PeerAddress = defineMessage("PeerAddress", {
  ring: SubjectToken,
  rank: Rank,
  host: HostName,
  port: z.number().int().min(1).max(65535),
  nonce: ShortBytes.optional(),
});

/**
 * First message on a ring edge (TCP frame or NATS request): names the edge and the protocol version. On a
 * TCP edge of a ring with a secret, `nonce` and `mac` prove the sender holds the ring's secret.
 */
export const EdgeHello = defineMessage("EdgeHello", {
  ring: SubjectToken,
  from: Rank,
  to: Rank,
  transport: TransportKind,
  nonce: ShortBytes.optional(),
  mac: ShortBytes.optional(),
});

export const EdgeHelloReply = defineMessage("EdgeHelloReply", {
  ok: z.boolean(),
  error: z.string().optional(),
  /** the accepting side's proof over the hello's nonce (rings with a secret) */
  mac: ShortBytes.optional(),
});

/** One chunk of an all-reduce, sender to next rank. `seq` counts chunks of this tag from 0. */
export const Chunk = defineMessage("Chunk", {
  tag: Tag,
  seq: Count,
  data: z.instanceof(Float32Array),
});

/** Flow control, receiver to sender: how many chunks of `tag` the receiver has consumed (cumulative). */
export const ChunkAck = defineMessage("ChunkAck", {
  tag: Tag,
  consumed: Count,
});
