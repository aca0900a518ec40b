// Shared by the data tests: fixture paths and reading targets back as text.
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";

/** dist/test/data -> repository root */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const fixtures = path.join(repoRoot, "test/fixtures/data");

/** Each run of consecutive target labels, decoded: what the model is asked to produce, turn by turn. */
export function targetRuns(labels: ArrayLike<number>, tok: TextTokenizer): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  for (let t = 0; t <= labels.length; t++) {
    const l = t < labels.length ? labels[t] : -100;
    if (l !== -100) cur.push(l);
    else if (cur.length) {
      runs.push(tok.decode(cur));
      cur = [];
    }
  }
  return runs;
}
