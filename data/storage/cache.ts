// The key of a built dataset's on-disk cache: a hash of the inputs (file contents), the settings, the
// tokenizer, the template and this pipeline's own code, so a restart does not tokenize again and a
// change to any of them never serves stale rows.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The compiled tree's root (this file is data/storage/cache.js under it): the pipeline's code lies in data/,
// the text it reads and renders in text/, its seeds and tokenizer choice in spec/.
const compiledRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PIPELINE_CODE = ["data", "text", "spec"];

/** Hash of the compiled pipeline code: editing how rows are made invalidates old caches. */
function codeHash(): string {
  const h = createHash("sha256");
  const walk = (dir: string) => {
    for (const f of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, f.name);
      if (f.isDirectory()) walk(p);
      else if (f.name.endsWith(".js")) h.update(f.name).update(readFileSync(p));
    }
  };
  for (const folder of PIPELINE_CODE) walk(path.join(compiledRoot, folder));
  return h.digest("hex");
}

export function cacheKey(parts: unknown): string {
  return createHash("sha256").update(codeHash()).update(JSON.stringify(parts)).digest("hex").slice(0, 32);
}
