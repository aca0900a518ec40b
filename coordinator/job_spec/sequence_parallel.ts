// The rules a sequence-parallel job must meet, reported like the schema's own issues (the key as path),
// and the position range a model's config allows.
import { readFileSync } from "node:fs";
import type { z } from "zod";
import { parseHfConfig, type HfConfig } from "../../native/js/hf_config.js";

/** The longest row a job may ask for: 256 Ki tokens. */
export const MAX_SEQ_LEN = 262144;

export function checkSequenceParallelKeys(
  // workers as the spec gives it: a count, or an elastic {min, max} (workers_spec.ts, which needs this file's
  // MAX_SEQ_LEN through size_limits.ts, so its type is spelled out here)
  spec: { sequence_parallel: number; workers: number | { min: number }; seq_len: number; transport?: string },
  ctx: z.RefinementCtx,
): void {
  const n = spec.sequence_parallel;
  const workers = typeof spec.workers === "number" ? spec.workers : spec.workers.min;
  if (workers % n !== 0)
    ctx.addIssue({
      code: "custom",
      path: ["sequence_parallel"],
      message: `sequence_parallel (${n}) must divide workers (${workers}): the ring forms workers / sequence_parallel groups`,
    });
  if (spec.seq_len % (2 * n) !== 0)
    ctx.addIssue({
      code: "custom",
      path: ["seq_len"],
      message:
        `seq_len (${spec.seq_len}) must be a multiple of 2 x sequence_parallel (${2 * n}): each row is cut into ` +
        `${2 * n} equal chunks`,
    });
  // Ring attention moves key/value blocks from inside the native step, on the model's own threads, through a
  // blocking byte stream between group neighbours (native TCP). The NATS transport lives in the worker's
  // JavaScript: reaching it would hand every block of every layer back to the event loop mid-step. A job that
  // asks for NATS is refused rather than silently sending its K/V over TCP anyway.
  if (n > 1 && spec.transport === "nats")
    ctx.addIssue({
      code: "custom",
      path: ["transport"],
      message:
        `transport: nats cannot carry sequence_parallel (${n}): ring attention's key/value blocks travel over ` +
        `native TCP links between group neighbours; use transport: tcp (the default) or sequence_parallel: 1`,
    });
}

/** Positions the model can encode: max_position_embeddings, or its llama3 rope scaling's range when larger. */
export function positionRange(cfg: Pick<HfConfig, "maxPositionEmbeddings" | "native">): number {
  const s = cfg.native.ropeScaling;
  return Math.max(cfg.maxPositionEmbeddings, s ? Math.floor(s.factor * s.originalMaxPositionEmbeddings) : 0);
}

/** Why seq_len does not fit the model (naming the key and the config file), or undefined. */
export function positionRangeProblem(
  seqLen: number,
  cfg: Pick<HfConfig, "maxPositionEmbeddings" | "native">,
  file: string,
): string | undefined {
  const range = positionRange(cfg);
  if (seqLen <= range) return undefined;
  const how = cfg.native.ropeScaling ? "max_position_embeddings / rope_scaling range" : "max_position_embeddings";
  return `seq_len ${seqLen} exceeds the model's ${how} ${range} (${file})`;
}

/** positionRangeProblem for the job's own model config; unreadable configs are left to the model checks. */
export function specPositionProblem(spec: { seq_len: number }, configFile: string): string | undefined {
  let cfg: HfConfig;
  try {
    cfg = parseHfConfig(JSON.parse(readFileSync(configFile, "utf8")), configFile);
  } catch {
    return undefined;
  }
  return positionRangeProblem(spec.seq_len, cfg, configFile);
}
