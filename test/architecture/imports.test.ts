// The coordinator and the workers meet only in proto/: an import across that seam fails here.
import assert from "node:assert/strict";
import { test } from "node:test";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { FORBIDDEN_IMPORTS, importSpecifiers, importViolations, readSourceFiles } from "../helpers/import_graph.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

test("coordinator/, worker/ and proto/ import nothing across the coordinator-worker seam", () => {
  const files = readSourceFiles(repoRoot, Object.keys(FORBIDDEN_IMPORTS));
  assert.ok(
    files.some((f) => f.path === "coordinator/train/run_job.ts"),
    "the scan found the coordinator's sources",
  );
  assert.ok(
    files.some((f) => f.path === "worker/job_runner.ts"),
    "the scan found the worker's sources",
  );
  assert.deepEqual(importViolations(files), []);
});

test("the checker reports a planted import in each forbidden direction and passes allowed ones", () => {
  const violations = importViolations([
    { path: "coordinator/train/x.ts", text: 'import { connectTransport } from "../../worker/allreduce/mod.js";' },
    { path: "worker/x.ts", text: 'export { parseSpec } from "../coordinator/job_spec/load.js";' },
    { path: "proto/x.ts", text: 'const m = await import("../worker/trainer.js");' },
    { path: "proto/y.ts", text: 'import type {\n  JobSpec,\n} from "../coordinator/job_spec/job_spec.js";' },
    { path: "coordinator/ok.ts", text: 'import { subjects } from "../proto/mod.js";\nimport { z } from "zod";' },
    { path: "worker/ok.ts", text: '// import { x } from "../coordinator/main.js";\nimport "../native/js/addon.js";' },
  ]);
  assert.deepEqual(
    violations.map((v) => [v.file, v.rule]),
    [
      ["coordinator/train/x.ts", "coordinator/ must not import from worker/"],
      ["worker/x.ts", "worker/ must not import from coordinator/"],
      ["proto/x.ts", "proto/ must not import from worker/"],
      ["proto/y.ts", "proto/ must not import from coordinator/"],
    ],
  );
});

test("import specifiers are read from static, type-only, side-effect, re-export and dynamic imports", () => {
  const text = [
    'import a from "./a.js";',
    'import type { B } from "./b.js";',
    'import "./c.js";',
    'export * from "./d.js";',
    'const e = await import("./e.js");',
    "/* import f from './f.js'; */",
  ].join("\n");
  assert.deepEqual(importSpecifiers(text), ["./a.js", "./b.js", "./c.js", "./d.js", "./e.js"]);
});
