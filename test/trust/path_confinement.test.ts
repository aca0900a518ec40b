// Job paths stay under the coordinator's roots: `..`, absolute paths elsewhere and symlinks that lead out
// are refused at intake with the key named and nothing of the file's contents in the message; paths under
// the roots (symlinks that stay inside included) are accepted.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { submissionProblems } from "../../coordinator/jobs/intake.js";
import { INPUT_ROOTS_VARIABLE, InputFileError, openInputSync, readRegularFile } from "../../files/input_files.js";
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

function problems(overrides: Record<string, unknown>, base = dataRoot) {
  return submissionProblems({ spec: spec(overrides), base_dir: base, source: "job.yaml" }, roots);
}

test("a spec whose paths lie under the roots is accepted, a symlink that stays inside included", async () => {
  assert.deepEqual(await problems({}), []);
  assert.deepEqual(await problems({ data: [{ path: "alias.jsonl" }], cache_dir: path.join(outputRoot, "cache") }), []);
});

test("'..' out of the data root is refused with the key named", async () => {
  const p = await problems({ data: [{ path: "../elsewhere/private.jsonl" }] });
  assert.equal(p.length, 1);
  assert.equal(p[0]!.key, "data[0].path");
  assert.match(p[0]!.message, /job\.yaml: data\[0\]\.path: .* is outside the coordinator's data root/);
  assert.ok(!p[0]!.message.includes(SECRET));
});

test("absolute paths outside the roots are refused for inputs, outputs and the cache", async () => {
  const p = await problems({
    model: { path: "/etc" },
    output: path.join(outside, "out"),
    cache_dir: "/var/tmp/ringtune-cache",
  });
  assert.deepEqual(p.map((e) => e.key).sort(), ["cache_dir", "model.path", "output"]);
  assert.match(p.find((e) => e.key === "output")!.message, /outside the coordinator's output root/);
});

test("a symlink leading out of a root is refused, and the message holds nothing of the file", async () => {
  const p = await problems({ data: [{ path: "leak.jsonl" }] });
  assert.equal(p.length, 1);
  assert.match(p[0]!.message, /leads out of the coordinator's data root\(s\) .* through a symbolic link/);
  assert.ok(!p[0]!.message.includes(SECRET));
});

test("an output under a symlinked folder that leaves the output root is refused before anything is written", async () => {
  const p = await problems({ output: path.join(outputRoot, "trap", "run1") });
  assert.equal(p.length, 1);
  assert.equal(p[0]!.key, "output");
  assert.match(p[0]!.message, /through a symbolic link/);
});

test("inputs may come from an output root (an earlier job's model), outputs never from a data root", async () => {
  writeFileSync(path.join(outputRoot, "previous.jsonl"), JSON.stringify({ text: "x" }) + "\n");
  assert.deepEqual(await problems({ data: [{ path: path.join(outputRoot, "previous.jsonl") }] }), []);
  const p = await problems({ output: path.join(dataRoot, "out") });
  assert.deepEqual(
    p.map((e) => e.key),
    ["output"],
  );
});

test("root lists are ':'-separated and made absolute; a path exactly at a root is inside it", async () => {
  assert.deepEqual(parseRootList("a::/b", "/w"), ["/w/a", "/b"]);
  assert.equal(outsideRoots(dataRoot, [dataRoot], "data"), undefined);
  assert.match(outsideRoots(`${dataRoot}-sibling/x`, [dataRoot], "data")!, /outside/);
});

// A LLaMA-Factory folder outside the roots, one inside whose dataset_info.json is a link out, and one whose
// entry names a folder outside: each refused before anything there is read, listed or even looked at.
const outsideDatasets = path.join(outside, "lf");
mkdirSync(outsideDatasets);
writeFileSync(
  path.join(outsideDatasets, "dataset_info.json"),
  JSON.stringify({ private_set: { file_name: "x.json" } }),
);
writeFileSync(path.join(outside, "secret-info.json"), SECRET);
const linkedInfo = path.join(dataRoot, "lf-linked");
mkdirSync(linkedInfo);
symlinkSync(path.join(outside, "secret-info.json"), path.join(linkedInfo, "dataset_info.json"));
const namesOutside = path.join(dataRoot, "lf-names-outside");
mkdirSync(namesOutside);
writeFileSync(
  path.join(namesOutside, "dataset_info.json"),
  JSON.stringify({ d: { file_name: "../../elsewhere/lf" }, gone: { file_name: "../../elsewhere/nothing-here" } }),
);

/** The message with the paths that differ between two probes taken out. */
const shape = (message: string, ...paths: string[]) => paths.reduce((m, p) => m.split(p).join("PATH"), message);

test("dataset_dir outside the roots is refused by key, alike whether the folder exists or not", async () => {
  const there = await problems({ data: [], dataset: "private_set", dataset_dir: outsideDatasets });
  const absent = await problems({ data: [], dataset: "private_set", dataset_dir: path.join(outside, "nope") });
  assert.deepEqual(
    there.map((p) => p.key),
    ["dataset_dir"],
  );
  assert.match(there[0]!.message, /dataset_dir: .* is outside the coordinator's data root/);
  assert.equal(shape(there[0]!.message, outsideDatasets), shape(absent[0]!.message, path.join(outside, "nope")));
  assert.ok(!there[0]!.message.includes("private_set"), "nothing of the outside dataset_info.json is shown");
});

test("a dataset_info.json linked out of the root is refused without a word of its contents", async () => {
  const p = await problems({ data: [], dataset: "anything", dataset_dir: linkedInfo });
  assert.equal(p.length, 1);
  assert.match(p[0]!.message, /dataset_info\.json' leads out of the coordinator's data root\(s\)/);
  assert.ok(!p[0]!.message.includes(SECRET));
});

test("a dataset entry naming a folder outside is refused without listing it, existing or not", async () => {
  const there = await problems({ data: [], dataset: "d", dataset_dir: namesOutside });
  const absent = await problems({ data: [], dataset: "gone", dataset_dir: namesOutside });
  assert.equal(there[0]!.key, "dataset");
  assert.match(there[0]!.message, /file_name: .* is outside the coordinator's data root/);
  assert.ok(!there[0]!.message.includes("dataset_info.json'") || !there[0]!.message.includes("x.json"));
  assert.equal(
    shape(there[0]!.message, path.join(outside, "lf"), "'d'"),
    shape(absent[0]!.message, path.join(outside, "nothing-here"), "'gone'"),
  );
});

test("a link out of the root is refused alike whether its target exists or not", async () => {
  symlinkSync(path.join(outside, "no-such-file.jsonl"), path.join(dataRoot, "dangling.jsonl"));
  const there = await problems({ data: [{ path: "leak.jsonl" }] });
  const absent = await problems({ data: [{ path: "dangling.jsonl" }] });
  assert.equal(shape(there[0]!.message, "leak.jsonl"), shape(absent[0]!.message, "dangling.jsonl"));
});

test("a FIFO or a socket named as a data file is refused by type at intake", async () => {
  execFileSync("mkfifo", [path.join(dataRoot, "pipe.jsonl")]);
  const p = await problems({ data: [{ path: "pipe.jsonl" }] });
  assert.equal(p[0]!.key, "data[0].path");
  assert.match(p[0]!.message, /pipe\.jsonl is a FIFO; inputs must be regular files/);
  const server = net.createServer().listen(path.join(dataRoot, "sock.jsonl"));
  await once(server, "listening");
  try {
    const s = await problems({ data: [{ path: "sock.jsonl" }] });
    assert.match(s[0]!.message, /sock\.jsonl is a socket; inputs must be regular files/);
  } finally {
    server.close();
  }
});

test("a data file replaced by a link out after intake is refused as it is opened; a FIFO without waiting", async () => {
  const file = path.join(dataRoot, "swapped.jsonl");
  writeFileSync(file, JSON.stringify({ text: "checked" }) + "\n");
  assert.deepEqual(await problems({ data: [{ path: "swapped.jsonl" }] }), []);
  rmSync(file);
  symlinkSync(path.join(outside, "private.jsonl"), file);
  const saved = process.env[INPUT_ROOTS_VARIABLE];
  process.env[INPUT_ROOTS_VARIABLE] = [dataRoot, outputRoot].join(":");
  try {
    assert.throws(
      () => readRegularFile(file),
      (err: Error) => {
        assert.ok(err instanceof InputFileError);
        assert.match(err.message, /swapped\.jsonl: leads out of the input roots/);
        assert.ok(!err.message.includes(SECRET));
        return true;
      },
    );
    assert.equal(
      readRegularFile(path.join(dataRoot, "alias.jsonl")),
      readRegularFile(path.join(dataRoot, "train.jsonl")),
    );
    const started = Date.now();
    assert.throws(() => openInputSync(path.join(dataRoot, "pipe.jsonl")), /is a FIFO; inputs must be regular files/);
    assert.ok(Date.now() - started < 1000);
  } finally {
    if (saved === undefined) delete process.env[INPUT_ROOTS_VARIABLE];
    else process.env[INPUT_ROOTS_VARIABLE] = saved;
  }
});

test("a middle folder of a data path swapped for a link out after intake is refused as the file is opened", async () => {
  const sub = path.join(dataRoot, "sub");
  mkdirSync(sub);
  writeFileSync(path.join(sub, "train.jsonl"), JSON.stringify({ text: "checked" }) + "\n");
  assert.deepEqual(await problems({ data: [{ path: "sub/train.jsonl" }] }), []);
  // the folder, not the file, goes: sub becomes a link to a folder outside with a file of the same name
  const outsideSub = path.join(outside, "sub");
  mkdirSync(outsideSub);
  writeFileSync(path.join(outsideSub, "train.jsonl"), JSON.stringify({ text: SECRET }) + "\n");
  renameSync(sub, path.join(dataRoot, "sub-moved"));
  symlinkSync(outsideSub, sub);
  const saved = process.env[INPUT_ROOTS_VARIABLE];
  process.env[INPUT_ROOTS_VARIABLE] = [dataRoot, outputRoot].join(":");
  try {
    assert.throws(
      () => readRegularFile(path.join(sub, "train.jsonl")),
      (err: Error) =>
        err instanceof InputFileError &&
        /sub\/train\.jsonl: leads out of the input roots/.test(err.message) &&
        !err.message.includes(SECRET),
    );
  } finally {
    if (saved === undefined) delete process.env[INPUT_ROOTS_VARIABLE];
    else process.env[INPUT_ROOTS_VARIABLE] = saved;
  }
});
