// A job's data before training: read, tokenized and packed off the main thread, refused when the bad-record
// policy says so or when the model's vocabulary cannot hold the tokenizer's ids.
import path from "node:path";
import { readHfConfig } from "../../hf/hf_config.js";
import { buildDatasetInThread } from "../../data/build_in_thread.js";
import { isBadRecord } from "../../data/data_keys.js";
import type { PrepareProgress, PreparedDataset } from "../../data/streamed_pipeline.js";
import { BadRecordsError } from "../../text/records/problems.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { positionRangeProblem } from "../../spec/sequence_parallel.js";
import { preparePairsInThread } from "../../data/preference/pairs_in_thread.js";

export async function prepareData(
  spec: JobSpec,
  onProgress?: (p: PrepareProgress) => void,
  signal?: AbortSignal,
): Promise<PreparedDataset> {
  const data =
    spec.stage === "dpo"
      ? await preparePairsInThread(spec, onProgress, signal)
      : await buildDatasetInThread(spec, onProgress, signal);
  try {
    if (data.failed) throw new BadRecordsError(data.problems.filter(isBadRecord));
    await checkVocab(spec, data);
  } catch (err) {
    data.close();
    throw err;
  }
  return data;
}

async function checkVocab(spec: JobSpec, data: PreparedDataset): Promise<void> {
  const configFile = spec.model.path ? path.join(spec.model.path, "config.json") : spec.model.init!.config;
  const cfg = await readHfConfig(configFile);
  const positions = positionRangeProblem(spec.seq_len, cfg, configFile);
  if (positions) throw new Error(positions);
  const need = data.setup.tokenizer.vocabSize;
  if (need > cfg.native.vocabSize)
    throw new Error(
      `${configFile}: vocab_size ${cfg.native.vocabSize} is smaller than the tokenizer's ${need} tokens (template markers included)`,
    );
}
