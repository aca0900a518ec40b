// The data cache as an outsider who can write into it attacks it: a job's token cache entry (its manifest,
// tokens, rows), the entry itself, the cache folder and a stored reference replaced by symbolic links to
// copies outside the roots, or by a FIFO. The coordinator's data thread (with the process's input roots, as a
// coordinator has them) refuses each by name, at once, without reading through it or showing what lies
// outside; a rebuild asked for removes a planted entry link and writes nothing outside.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { buildDatasetInThread } from "../../data/build_in_thread.js";
import type { DataSpec } from "../../data/data_keys.js";
import { readReference } from "../../data/preference/reference_store.js";
import { prepareDataset } from "../../data/streamed_pipeline.js";
import { HeldFolder } from "../../files/held_folder.js";
import { INPUT_ROOTS_VARIABLE } from "../../files/input_files.js";
import { parseSpec } from "../../spec/load.js";

const top = realpathSync(mkdtempSync(path.join(os.tmpdir(), "ringtune-cache-links-")));
const root = path.join(top, "root");
const cache = path.join(root, "cache");
const outside = path.join(top, "outside");
const SECRET = "s3cr3t-outside-the-roots";
const saved = process.env[INPUT_ROOTS_VARIABLE];
let spec: DataSpec;
let entry = "";
let outsideEntry = "";

before(async () => {
  mkdirSync(root);
  mkdirSync(outside);
  process.env[INPUT_ROOTS_VARIABLE] = root;
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ instruction: `q ${i}?`, output: `a ${i}` }));
  writeFileSync(path.join(root, "train.jsonl"), lines.join("\n") + "\n");
  writeFileSync(path.join(outside, "secret.txt"), `${SECRET}\n`);
  spec = parseSpec(
    { model: { init: { config: "x.json" } }, tokenizer: "byte", data: [{ path: "train.jsonl" }], seq_len: 64 },
    "test",
    root,
  );
  spec = { ...spec, cache_dir: cache };
  const built = await buildDatasetInThread(spec);
  entry = built.cacheDir;
  built.close();
  // a whole copy of the entry outside the roots: through a link to it, a read would succeed unnoticed
  outsideEntry = path.join(outside, "entry");
  cpSync(entry, outsideEntry, { recursive: true });
});

after(() => {
  if (saved === undefined) delete process.env[INPUT_ROOTS_VARIABLE];
  else process.env[INPUT_ROOTS_VARIABLE] = saved;
  rmSync(top, { recursive: true, force: true });
});

/**
 * Plants something in the cache, then opens the job's data as the coordinator's data thread does (in this
 * thread: the same prepareDataset, quicker to start; `thread` to go through the thread itself); restores the
 * cache afterwards.
 */
async function refusedAfter(plant: () => () => void, expected: RegExp, thread = false): Promise<void> {
  const restore = plant();
  try {
    const opened = thread ? buildDatasetInThread(spec) : prepareDataset(spec, { quiet: true });
    await assert.rejects(opened, (err: Error) => {
      assert.match(err.message, expected);
      assert.ok(!err.message.includes(SECRET), err.message);
      return true;
    });
  } finally {
    restore();
  }
}

/** Replaces `file` with a link to `target`; the returned function puts the file back. */
function swapForLink(file: string, target: string): () => void {
  renameSync(file, `${file}.moved`);
  symlinkSync(target, file);
  return () => {
    rmSync(file);
    renameSync(`${file}.moved`, file);
  };
}

test("the cached entry opens again from the cache (the control: each refusal below is the planted thing)", async () => {
  const d = await prepareDataset(spec, { quiet: true });
  assert.equal(d.fromCache, true);
  assert.ok(d.train.length > 0);
  d.close();
});

test("a cache file replaced by a link out of the roots is refused by name, not read", async () => {
  for (const name of ["tokens.bin", "rows.bin", "examples.bin"])
    await refusedAfter(
      () => swapForLink(path.join(entry, name), path.join(outsideEntry, name)),
      new RegExp(`${path.join(entry, name)}: is a symbolic link; .*remove ${entry} and the job builds it again`),
      name === "tokens.bin",
    );
  // the manifest linked to a file that is not one: nothing of it shows in the refusal
  await refusedAfter(
    () => swapForLink(path.join(entry, "meta.json"), path.join(outside, "secret.txt")),
    new RegExp(`${path.join(entry, "meta.json")}: is a symbolic link`),
  );
});

test("the entry, or the cache folder itself, replaced by a link to a copy outside is refused by name", async () => {
  await refusedAfter(() => swapForLink(entry, outsideEntry), new RegExp(`${entry}: is a symbolic link`));
  await refusedAfter(
    () => {
      const copy = path.join(outside, "cache");
      cpSync(cache, copy, { recursive: true });
      const restore = swapForLink(cache, copy);
      return () => {
        restore();
        rmSync(copy, { recursive: true });
      };
    },
    new RegExp(`${cache}: is a symbolic link; outputs are never written through links`),
  );
});

test("a FIFO in a cache entry is refused by type at once, never waited on", async () => {
  const rows = path.join(entry, "rows.bin");
  await refusedAfter(
    () => {
      renameSync(rows, `${rows}.moved`);
      execFileSync("mkfifo", [rows]);
      return () => {
        rmSync(rows);
        renameSync(`${rows}.moved`, rows);
      };
    },
    new RegExp(`${rows}: is a FIFO`),
  );
});

test("a stored reference replaced by a link out is refused by name, not read", () => {
  const name = "reference-0123.bin";
  symlinkSync(path.join(outside, "secret.txt"), path.join(entry, name));
  const held = HeldFolder.open(entry);
  try {
    assert.throws(() => readReference(held, name, 1, 1), new RegExp(`${path.join(entry, name)}: is a symbolic link`));
  } finally {
    held.close();
    rmSync(path.join(entry, name));
  }
});

test("a rebuild asked for replaces a planted entry link with a real entry and writes nothing outside", async () => {
  const before = readdirSync(outsideEntry).map((f) => [f, readFileSync(path.join(outsideEntry, f))] as const);
  swapForLink(entry, outsideEntry);
  try {
    const d = await prepareDataset(spec, { quiet: true, useCache: false });
    assert.equal(d.cacheDir, entry);
    d.close();
    assert.ok(lstatSync(entry).isDirectory(), "the link was replaced by the entry");
    for (const [f, bytes] of before) assert.deepEqual(readFileSync(path.join(outsideEntry, f)), bytes, f);
  } finally {
    rmSync(entry, { recursive: true });
    renameSync(`${entry}.moved`, entry);
  }
});
