// The assign command of one rank: where its weights come from, the ring it joins and the optimizer.
import type { LoraSettings } from "../../native/js/addon.js";
import { DEFAULT_TRANSPORT, type CommandRequest } from "../../proto/mod.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { preferenceSettings } from "../../spec/preference_spec.js";

export interface RingPlace {
  job: string;
  ring: string;
  rank: number;
  size: number;
  /** a checkpoint to resume from: it replaces the spec's model */
  resumeDir: string | undefined;
  /** adapters from the start (method lora) */
  lora: LoraSettings | undefined;
  /** the ring's secret, the same for every rank of one ring formation */
  ringSecret: Uint8Array<ArrayBuffer>;
  /** the worker of each rank, for errors that name a silent neighbour */
  workers?: readonly string[];
  /** the ring mixes devices (see ringMixesDevices) */
  mixedDevices?: boolean;
  /** the ring's NCCL unique id, sealed by rank 0 with the ring's secret; absent: host staging */
  ncclId?: Uint8Array;
  /** the NCCL unique id of this rank's sequence-parallel group, sealed by its first rank; absent: its TCP link */
  sequenceNcclId?: Uint8Array;
}

/**
 * Whether the ranks' devices are of more than one kind (cpu, cuda, cuda-emu), from their labels
 * ("cuda:1 (NVIDIA H100 ...)"); a worker whose device is unknown does not count. Such a ring updates its weights
 * with the host's arithmetic on every rank (OptimizerSettings.host_update).
 */
export function ringMixesDevices(labels: readonly (string | undefined)[]): boolean {
  const kinds = new Set(labels.flatMap((l) => (l ? [l.split(" ")[0]!.replace(/:\d+$/, "")] : [])));
  return kinds.size > 1;
}

export function assignRequest(spec: JobSpec, p: RingPlace): CommandRequest<"assign"> {
  return {
    job: p.job,
    ring: p.ring,
    rank: p.rank,
    size: p.size,
    transport: spec.transport ?? DEFAULT_TRANSPORT,
    ring_secret: p.ringSecret,
    model: p.resumeDir
      ? { resume: p.resumeDir }
      : {
          path: spec.model.path,
          init: spec.model.init && { config: spec.model.init.config, seed: spec.model.init.seed },
          adapter: spec.model.adapter,
        },
    optimizer: {
      beta1: spec.betas[0],
      beta2: spec.betas[1],
      eps: spec.eps,
      weight_decay: spec.weight_decay,
      grad_clip: spec.grad_clip,
      zero: spec.zero,
      ...(p.mixedDevices ? { host_update: true } : {}),
    },
    lora: spec.method === "lora" ? p.lora : undefined,
    sequence_parallel: spec.sequence_parallel > 1 ? spec.sequence_parallel : undefined,
    activation_checkpointing: spec.activation_checkpointing,
    precision: spec.precision,
    ring_timeout_ms: Math.round(spec.ring_timeout_s * 1000),
    ring_workers: p.workers && [...p.workers],
    preference: spec.stage === "dpo" ? preferenceSettings(spec) : undefined,
    nccl_id: p.ncclId && Uint8Array.from(p.ncclId),
    sequence_nccl_id: spec.sequence_parallel > 1 && p.sequenceNcclId ? Uint8Array.from(p.sequenceNcclId) : undefined,
  };
}
