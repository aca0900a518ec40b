// The token ids a generated answer to a chat stops at: the model's own EOS ids, the tokenizer's EOS and the
// end-of-turn markers that the built-in and common model templates close an answer with. The generation
// eval and serving stop at the same ids, so an answer is cut in the same place in both.
import type { TextTokenizer } from "./tokenizers/tokenizer.js";

function specialId(setup: { tokenizer: TextTokenizer }, s: string): number | null {
  const ids = setup.tokenizer.encode(s);
  return ids.length === 1 && setup.tokenizer.decode(ids) === s ? ids[0] : null;
}

/** End-of-turn markers the built-in and common model templates close an answer with. */
const END_OF_TURN = ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "</s>"];

/**
 * Token ids that end an answer to a chat: the model's EOS ids (generation_config.json, else config.json),
 * the tokenizer's EOS and the template's end-of-turn tokens. Sorted, without repeats.
 */
export function chatStopIds(setup: { tokenizer: TextTokenizer }, modelEosIds: readonly number[] = []): Int32Array {
  const ids = new Set<number>([...modelEosIds, setup.tokenizer.eosId]);
  for (const s of END_OF_TURN) {
    const id = specialId(setup, s);
    if (id !== null) ids.add(id);
  }
  return Int32Array.from([...ids].sort((a, b) => a - b));
}
