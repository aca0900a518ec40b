// generation_config.json: where HF keeps the EOS ids generation stops on (often a list for chat
// models, e.g. Llama 3's <|end_of_text|> and <|eot_id|>), which may differ from config.json's.
import path from "node:path";
import { z } from "zod";
import type { HfConfig } from "./hf_config.js";
import { CorruptFileError } from "./errors.js";
import { inputPresent, readRegularFile } from "../files/input_files.js";

const tokenIds = z.union([z.number().int(), z.array(z.number().int())]).nullish();
const schema = z.looseObject({ bos_token_id: tokenIds, eos_token_id: tokenIds, pad_token_id: tokenIds });

const asList = (v: number | number[] | null | undefined): number[] => (v == null ? [] : Array.isArray(v) ? v : [v]);

/** The parsed generation_config.json of `dir`, or null when the folder has none. */
export async function readGenerationConfig(dir: string): Promise<Record<string, unknown> | null> {
  const file = path.join(dir, "generation_config.json");
  if (!inputPresent(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(file));
  } catch (err) {
    throw new CorruptFileError(file, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new CorruptFileError(file, detail);
  }
  return r.data;
}

/** EOS ids to stop on: generation_config.json's when it names any, else config.json's. */
export function eosTokenIds(generation: Record<string, unknown> | null, config: HfConfig): number[] {
  const fromGeneration = asList(generation?.eos_token_id as number | number[] | null | undefined);
  return fromGeneration.length > 0 ? fromGeneration : config.eosTokenIds;
}

/** The generation_config.json to save: the source folder's if there was one, else built from config. */
export function generationConfigJson(
  config: HfConfig,
  source: Record<string, unknown> | null,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(source ?? {}) };
  if (out.bos_token_id === undefined && config.bosTokenId !== null) out.bos_token_id = config.bosTokenId;
  if (out.eos_token_id === undefined && config.eosTokenIds.length > 0) {
    out.eos_token_id = config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds;
  }
  return out;
}
