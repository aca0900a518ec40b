// Processes (coordinator, worker, serve, CLI) meet only through the shared libraries: a library that reaches a
// process, or a process that reaches another, fails here, however many imports the path takes.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { LIBRARIES, PROCESSES, importSpecifiers, importViolations, readSourceFiles } from "../helpers/import_graph.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

test("no library reaches a process and no process reaches another, following imports transitively", () => {
  const files = readSourceFiles(repoRoot);
  for (const folder of [...PROCESSES, ...LIBRARIES]) {
    assert.ok(
      files.some((f) => f.path.startsWith(`${folder}/`)),
      `the scan found the sources of ${folder}/`,
    );
  }
  assert.deepEqual(importViolations(files), []);
});

/** Writes `files` (path -> text) under a fresh temporary folder and reads them back as the checker would. */
function plantTree(files: Record<string, string>): ReturnType<typeof readSourceFiles> {
  const root = mkdtempSync(path.join(os.tmpdir(), "ringtune-imports-"));
  try {
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
      writeFileSync(path.join(root, rel), text);
    }
    return readSourceFiles(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test("a planted tree with violating imports fails the checker, each with its chain", () => {
  const files = plantTree({
    // A library reaching a process through another library: the first file is reported too.
    "text/a.ts": 'import { b } from "./b.js";',
    "text/b.ts": 'import type { JobRun } from "../coordinator/train/job.js";',
    "coordinator/train/job.ts": "export const job = 1;",
    // A process reaching another through a library.
    "worker/x.ts": 'export { y } from "../spec/y.js";',
    "spec/y.ts": 'const m = await import("../cli/z.js");',
    "cli/z.ts": "export const z = 1;",
    // The CLI may import an entry point of a process it starts, and nothing else of it.
    "cli/start.ts": 'import { Coordinator } from "../coordinator/main.js";\nimport "../worker/main.js";',
    "cli/bad.ts": 'import { WorkerServing } from "../worker/serving.js";',
    "cli/serve.ts": 'import { ServeProcess } from "../serve/main.js";',
    // The standalone server is a process too: it shares the serving library with the worker, not its files.
    "serve/main.ts": 'import { engine } from "../serving/engine.js";',
    "serve/hosted.ts": 'import { WorkerServing } from "../worker/serving.js";',
    "coordinator/route.ts": 'import { ServeProcess } from "../serve/main.js";',
    "worker/host.ts": 'import { engine } from "../serving/engine.js";',
    "serving/engine.ts": "export const engine = 1;",
    "serving/door.ts": 'import type { ServeProcess } from "../serve/main.js";',
    "coordinator/main.ts": 'import { job } from "./train/job.js";\nimport { p } from "../proto/p.js";',
    "worker/main.ts": 'import { p } from "../proto/p.js";\n// import { x } from "../coordinator/main.js";',
    "worker/serving.ts": "export const s = 1;",
    "proto/p.ts": 'import { z } from "zod";',
    // A folder nobody placed on either side.
    "misc/m.ts": "export const m = 1;",
  });
  assert.deepEqual(
    importViolations(files)
      .map((v) => [v.file, v.chain.join(" -> "), v.rule])
      .sort(),
    [
      ["cli/bad.ts", "cli/bad.ts -> worker/serving.ts", "a process (cli/) must not reach another process (worker/)"],
      [
        "coordinator/route.ts",
        "coordinator/route.ts -> serve/main.ts",
        "a process (coordinator/) must not reach another process (serve/)",
      ],
      ["misc/m.ts", "misc/m.ts", "misc/ is neither a process nor a library"],
      [
        "serve/hosted.ts",
        "serve/hosted.ts -> worker/serving.ts",
        "a process (serve/) must not reach another process (worker/)",
      ],
      ["serving/door.ts", "serving/door.ts -> serve/main.ts", "a library (serving/) must not reach a process (serve/)"],
      ["spec/y.ts", "spec/y.ts -> cli/z.ts", "a library (spec/) must not reach a process (cli/)"],
      [
        "text/a.ts",
        "text/a.ts -> text/b.ts -> coordinator/train/job.ts",
        "a library (text/) must not reach a process (coordinator/)",
      ],
      [
        "text/b.ts",
        "text/b.ts -> coordinator/train/job.ts",
        "a library (text/) must not reach a process (coordinator/)",
      ],
      [
        "worker/x.ts",
        "worker/x.ts -> spec/y.ts -> cli/z.ts",
        "a process (worker/) must not reach another process (cli/)",
      ],
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
