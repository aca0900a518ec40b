// A job's memory estimate: the model's shape read from its config.json (or the init config), the job's
// method, adapters and batch shape from the spec, then the per-rank arithmetic of memory_estimate.ts.
import { readRegularFile } from "../files/input_files.js";
import path from "node:path";
import { parseHfConfig } from "../hf/hf_config.js";
import { loraSettingsOf } from "./lora_plan.js";
import { rowsPerStepOf } from "./step_plan.js";
import type { JobSpec } from "./job_spec.js";
import { formatBytes, inUnit, unitFor } from "./byte_units.js";
import { estimateMemory, type BasePrecision, type MemoryEstimate, type ModelShape } from "./memory_estimate.js";
import { minWorkers } from "./workers_spec.js";

/**
 * Threads assumed when the worker is not known yet (at intake): only the per-thread attention tiles depend
 * on it, a few MiB per thread at common seq_len.
 */
export const DEFAULT_ESTIMATE_THREADS = 16;

/** The config file that gives the job's model shape (a resumed job keeps the shape of its spec's model). */
export function modelConfigFile(spec: JobSpec): string {
  if (spec.model.init) return spec.model.init.config;
  return path.join(spec.model.path!, "config.json");
}

/** The model's shape from its config; errors name the file. */
export function readModelShape(spec: JobSpec): ModelShape {
  const file = modelConfigFile(spec);
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(file));
  } catch (err) {
    throw new Error(`${file}: cannot read the model config for the memory estimate (${(err as Error).message})`);
  }
  return parseHfConfig(json, file).native;
}

/**
 * Frozen-base storage under LoRA: bf16 unless the spec's lora.base_precision says fp32. Read loosely so
 * the estimate works whether or not the schema in this build carries the key.
 */
export function basePrecisionOf(spec: JobSpec): BasePrecision {
  const asked = (spec.lora as { base_precision?: unknown } | undefined)?.base_precision;
  return asked === "fp32" ? "fp32" : "bf16";
}

/**
 * Row counts of the micro-batch shapes one rank runs: a step's rows are split over the ranks (shares
 * differ by at most one row), then into micro-batches of micro_batch_rows; a smaller last micro-batch is
 * a shape of its own. The largest rank's shapes are returned.
 */
export function microBatchShapes(spec: JobSpec): number[] {
  // Under sequence parallelism a group shares its rows: every rank holds a slice of each.
  const share = Math.ceil(rowsPerStepOf(spec) / (minWorkers(spec) / spec.sequence_parallel));
  const per = Math.min(spec.micro_batch_rows, share);
  const rest = share % per;
  return rest === 0 ? [per] : [per, rest];
}

/** What a worker computes on, as it registered (proto Device.kind); the emulator counts as a GPU. */
export type WorkerDeviceKind = "cpu" | "cuda" | "cuda-emu";

export function estimateJobMemory(
  spec: JobSpec,
  shape: ModelShape,
  threads = DEFAULT_ESTIMATE_THREADS,
  device: WorkerDeviceKind = "cpu",
): MemoryEstimate {
  const lora = loraSettingsOf(spec);
  return estimateMemory(shape, {
    method: spec.method,
    lora: lora && {
      rank: lora.rank,
      targets: lora.targets,
      dropout: lora.dropout,
      basePrecision: basePrecisionOf(spec),
    },
    seqLen: spec.seq_len / spec.sequence_parallel, // a rank's tokens of each row
    microBatchRows: microBatchShapes(spec),
    evaluates: spec.val_size > 0,
    threads,
    activationCheckpointing: spec.activation_checkpointing,
    // ZeRO-1 shards the moments over the data-parallel ranks
    sharding: { optimizerShards: spec.zero >= 1 ? minWorkers(spec) : 1 },
    device: device === "cpu" ? "cpu" : "gpu",
    precision: spec.precision,
  });
}

/**
 * "11.2 GiB per rank (params 1.9, grads 1.9, moments 3.8, activations 3.6)": the parts in the total's unit; on
 * a GPU in bf16, ", bf16 compute copy 0.9" after the activations.
 */
export function describeNeed(e: MemoryEstimate): string {
  const u = unitFor(e.total);
  const copy = e.computeCopy > 0 ? `, bf16 compute copy ${inUnit(e.computeCopy, u)}` : "";
  return (
    `${formatBytes(e.total)} per rank (params ${inUnit(e.params, u)}, grads ${inUnit(e.grads, u)}, ` +
    `moments ${inUnit(e.optimizer, u)}, activations ${inUnit(e.activations, u)}${copy})`
  );
}

/** A few lines for people: the total per rank, its parts, and what the activations are made of. */
export function formatEstimate(e: MemoryEstimate): string[] {
  const millions = (n: number) => `${(n / 1e6).toFixed(1)}M`;
  const a = e.activationParts;
  const phase = e.method === "hybrid" ? ` (hybrid: the larger phase, ${e.phase})` : "";
  const lines = [
    `memory per rank: ${formatBytes(e.total)}${phase}`,
    `  params ${formatBytes(e.params)} (${millions(e.baseParams)} base weights)` +
      (e.phase === "lora" ? `, ${millions(e.trainableParams)} adapter weights train` : ""),
    `  grads ${formatBytes(e.grads)}, AdamW moments ${formatBytes(e.optimizer)}` +
      (e.optimizerShards > 1 ? ` (ZeRO-1: 1/${e.optimizerShards} of them)` : ""),
    ...(e.computeCopy > 0
      ? [`  bf16 compute copy of the trained weights ${formatBytes(e.computeCopy)} (on a GPU)`]
      : []),
    `  activations ${formatBytes(e.activations)}: layers ${formatBytes(a.layers)}, head ${formatBytes(a.head)}` +
      (a.lora > 0 ? `, adapters ${formatBytes(a.lora)}` : "") +
      `, attention tiles ${formatBytes(a.attention)}` +
      (a.staging > 0 ? `, bf16 base staging ${formatBytes(a.staging)}` : ""),
  ];
  if (a.checkpointingSaved > 0)
    lines.push(`  activation checkpointing keeps ${formatBytes(a.checkpointingSaved)} fewer activation bytes`);
  return lines;
}
