// Job paths stay under the coordinator's roots: `..`, absolute paths elsewhere and symlinks that lead out
// are refused at intake with the key named and nothing of the file's contents in the message; paths under
// the roots (symlinks that stay inside included) are accepted.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { submissionProblems } from "../../coordinator/jobs/intake.js";
import { outsideRoots, parseRootList, type PathRoots } from "../../files/path_roots.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const top = realpathSync(mkdtempSync(path.join(tmpdir(), "ringtune-roots-")));
after(() => rmSync(top, { recursive: true, force: true }));

const dataRoot = path.join(top, "data");
const outputRoot = path.join(top, "outputs");
const outside = path.join(top, "elsewhere");
for (const d of [dataRoot, outputRoot, outside]) mkdirSync(d, { recursive: true });
const roots: PathRoots = { data: [dataRoot], output: [outputRoot] };

const SECRET = "s3cr3t-line-that-must-never-appear";
writeFileSync(path.join(outside, "private.jsonl"), JSON.stringify({ text: SECRET }) + "\n");
writeFileSync(path.join(dataRoot, "train.jsonl"), JSON.stringify({ text: "hello there" }) + "\n");
writeFileSync(path.join(dataRoot, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
// A symlink inside the data root pointing out of it, and one that stays inside.
symlinkSync(path.join(outside, "private.jsonl"), path.join(dataRoot, "leak.jsonl"));
symlinkSync(path.join(dataRoot, "train.jsonl"), path.join(dataRoot, "alias.jsonl"));
// An output folder that is a symlink to somewhere outside the output root.
symlinkSync(outside, path.join(outputRoot, "trap"));

function spec(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    model: { init: { config: "model.json", seed: 1 } },
    tokenizer: "byte",
    data: [{ path: "train.jsonl" }],
    seq_len: 32,
    max_steps: 1,
    global_batch_rows: 1,
    output: path.join(outputRoot, "job"),
    ...overrides,
  };
}

function problems(overrides: Record<string, unknown>) {
  return submissionProblems({ spec: spec(overrides), base_dir: dataRoot, source: "job.yaml" }, roots);
}

test("a spec whose paths lie under the roots is accepted, a symlink that stays inside included", () => {
  assert.deepEqual(problems({}), []);
  assert.deepEqual(problems({ data: [{ path: "alias.jsonl" }], cache_dir: path.join(outputRoot, "cache") }), []);
});

test("'..' out of the data root is refused with the key named", () => {
  const p = problems({ data: [{ path: "../elsewhere/private.jsonl" }] });
  assert.equal(p.length, 1);
  assert.equal(p[0]!.key, "data[0].path");
  assert.match(p[0]!.message, /job\.yaml: data\[0\]\.path: .* is outside the coordinator's data root/);
  assert.ok(!p[0]!.message.includes(SECRET));
});

test("absolute paths outside the roots are refused for inputs, outputs and the cache", () => {
  const p = problems({
    model: { path: "/etc" },
    output: path.join(outside, "out"),
    cache_dir: "/var/tmp/ringtune-cache",
  });
  assert.deepEqual(p.map((e) => e.key).sort(), ["cache_dir", "model.path", "output"]);
  assert.match(p.find((e) => e.key === "output")!.message, /outside the coordinator's output root/);
});

test("a symlink leading out of a root is refused, and the message holds nothing of the file", () => {
  const p = problems({ data: [{ path: "leak.jsonl" }] });
  assert.equal(p.length, 1);
  assert.match(p[0]!.message, /leads out of the coordinator's data root\(s\) .* through a symbolic link/);
  assert.ok(!p[0]!.message.includes(SECRET));
});

test("an output under a symlinked folder that leaves the output root is refused before anything is written", () => {
  const p = problems({ output: path.join(outputRoot, "trap", "run1") });
  assert.equal(p.length, 1);
  assert.equal(p[0]!.key, "output");
  assert.match(p[0]!.message, /through a symbolic link/);
});

test("inputs may come from an output root (an earlier job's model), outputs never from a data root", () => {
  writeFileSync(path.join(outputRoot, "previous.jsonl"), JSON.stringify({ text: "x" }) + "\n");
  assert.deepEqual(problems({ data: [{ path: path.join(outputRoot, "previous.jsonl") }] }), []);
  const p = problems({ output: path.join(dataRoot, "out") });
  assert.deepEqual(
    p.map((e) => e.key),
    ["output"],
  );
});

test("root lists are ':'-separated and made absolute; a path exactly at a root is inside it", () => {
  assert.deepEqual(parseRootList("a::/b", "/w"), ["/w/a", "/b"]);
  assert.equal(outsideRoots(dataRoot, [dataRoot], "data"), undefined);
  assert.match(outsideRoots(`${dataRoot}-sibling/x`, [dataRoot], "data")!, /outside/);
});
