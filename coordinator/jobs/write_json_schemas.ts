// Rewrites proto/schema/*.json from the zod schemas (`make schema`); run from the repository root.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { jsonSchemaFiles, SCHEMA_DIR } from "./json_schemas.js";

const dir = path.resolve(process.argv[2] ?? SCHEMA_DIR);
mkdirSync(dir, { recursive: true });
const files = jsonSchemaFiles();
// A document no longer generated must not linger looking current.
for (const old of readdirSync(dir)) if (old.endsWith(".json") && !files.has(old)) rmSync(path.join(dir, old));
for (const [name, text] of files) writeFileSync(path.join(dir, name), text);
console.log(`wrote ${files.size} JSON Schema documents to ${path.relative(process.cwd(), dir) || "."}`);
