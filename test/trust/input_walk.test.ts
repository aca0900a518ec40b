// Inputs read by the O_NOFOLLOW walk from their root (files/walk_beneath.ts): links that stay inside the roots
// are followed (a model cache's blobs), a link leading out is refused from its text alone (the refusal is the
// same whether its target exists or not), a FIFO, a device and a socket are refused by type without waiting,
// and a descriptor the walk reached keeps reading the checked file when a parent is swapped for a link.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import {
  INPUT_ROOTS_VARIABLE,
  InputFileError,
  listInputFolder,
  openInputSync,
  readRegularFile,
  withInputPath,
} from "../../files/input_files.js";
import { openBeneath } from "../../files/walk_beneath.js";
import { loadModel } from "../../hf/hf_model.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const top = realpathSync(mkdtempSync(path.join(tmpdir(), "ringtune-walk-")));
const root = path.join(top, "data");
const outside = path.join(top, "elsewhere");
const SECRET = "s3cr3t-that-must-never-be-read";
const saved = process.env[INPUT_ROOTS_VARIABLE];

before(() => {
  mkdirSync(path.join(root, "blobs"), { recursive: true });
  mkdirSync(path.join(root, "snapshots", "main"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, "private.jsonl"), JSON.stringify({ text: SECRET }) + "\n");
  writeFileSync(path.join(root, "train.jsonl"), "checked\n");
  writeFileSync(path.join(root, "blobs", "abc123"), "blob\n");
  // a Hugging Face cache: the snapshot's file is a relative link to its blob
  symlinkSync("../../blobs/abc123", path.join(root, "snapshots", "main", "model.bin"));
  symlinkSync(path.join(root, "train.jsonl"), path.join(root, "absolute-alias.jsonl"));
  symlinkSync("snapshots/main", path.join(root, "latest"));
  process.env[INPUT_ROOTS_VARIABLE] = root;
});

after(() => {
  if (saved === undefined) delete process.env[INPUT_ROOTS_VARIABLE];
  else process.env[INPUT_ROOTS_VARIABLE] = saved;
  rmSync(top, { recursive: true, force: true });
});

function refusal(read: () => unknown): InputFileError {
  try {
    read();
  } catch (err) {
    assert.ok(err instanceof InputFileError, `${(err as Error).name}: ${(err as Error).message}`);
    assert.ok(!err.message.includes(SECRET));
    return err;
  }
  assert.fail("the read was not refused");
}

test("links that stay inside the roots are followed by the walk: a cache's relative blobs, absolute aliases, linked folders", () => {
  assert.equal(readRegularFile(path.join(root, "snapshots", "main", "model.bin")), "blob\n");
  assert.equal(readRegularFile(path.join(root, "absolute-alias.jsonl")), "checked\n");
  assert.equal(readRegularFile(path.join(root, "latest", "model.bin")), "blob\n");
  assert.deepEqual(
    listInputFolder(path.join(root, "latest")).map((e) => e.name),
    ["model.bin"],
  );
});

test("a link out of the roots is refused from its text alone: the same refusal whether its target exists or not", () => {
  const link = path.join(root, "leak.jsonl");
  symlinkSync(path.join(outside, "private.jsonl"), link);
  const existing = refusal(() => readRegularFile(link));
  assert.match(existing.message, /leak\.jsonl: leads out of the input roots through the symbolic link leak\.jsonl/);
  rmSync(link);
  symlinkSync(path.join(outside, "no-such-file.jsonl"), link);
  assert.equal(refusal(() => readRegularFile(link)).message, existing.message);
  // a link to a folder outside, at a middle component: the same, whatever lies below it
  symlinkSync(outside, path.join(root, "far"));
  const deep = refusal(() => readRegularFile(path.join(root, "far", "private.jsonl")));
  assert.match(deep.message, /through the symbolic link far /);
  assert.equal(
    refusal(() => readRegularFile(path.join(root, "far", "nothing-here.jsonl"))).message.replace(
      "nothing-here",
      "private",
    ),
    deep.message,
  );
  rmSync(link);
  rmSync(path.join(root, "far"));
});

test("a link to /dev/zero, a FIFO and a socket are refused by what they are, at once, naming the file", async () => {
  symlinkSync("/dev/zero", path.join(root, "zero.jsonl"));
  assert.match(refusal(() => readRegularFile(path.join(root, "zero.jsonl"))).message, /zero\.jsonl: leads out/);
  execFileSync("mkfifo", [path.join(root, "pipe.jsonl")]);
  const started = Date.now();
  assert.match(refusal(() => openInputSync(path.join(root, "pipe.jsonl"))).message, /pipe\.jsonl: is a FIFO/);
  assert.ok(Date.now() - started < 1000, "the FIFO was not waited on");
  const server = net.createServer().listen(path.join(root, "sock.jsonl"));
  await once(server, "listening");
  try {
    assert.match(refusal(() => openInputSync(path.join(root, "sock.jsonl"))).message, /sock\.jsonl: .*is a socket/);
  } finally {
    server.close();
  }
  // a link inside the roots to a FIFO inside them: followed, then refused by type
  symlinkSync("pipe.jsonl", path.join(root, "pipe-alias.jsonl"));
  assert.match(refusal(() => openInputSync(path.join(root, "pipe-alias.jsonl"))).message, /is a FIFO/);
});

test("a model folder whose weights or config are a FIFO is refused at once, naming the file", async () => {
  const model = path.join(root, "model");
  mkdirSync(model);
  writeFileSync(path.join(model, "config.json"), JSON.stringify(TINY_BYTE_LLAMA));
  execFileSync("mkfifo", [path.join(model, "model.safetensors")]);
  const started = Date.now();
  await assert.rejects(loadModel(model), (err: Error) => {
    assert.match(err.message, /model\.safetensors: is a FIFO; inputs must be regular files/);
    return true;
  });
  rmSync(path.join(model, "config.json"));
  execFileSync("mkfifo", [path.join(model, "config.json")]);
  await assert.rejects(loadModel(model), /config\.json.*is a FIFO/);
  assert.ok(Date.now() - started < 2000, "no FIFO was waited on");
});

test("a descriptor the walk reached reads the checked file after its folder is swapped for a link out; a new walk refuses", async () => {
  const sub = path.join(root, "sub");
  mkdirSync(sub);
  writeFileSync(path.join(sub, "train.jsonl"), "checked\n");
  mkdirSync(path.join(outside, "sub"));
  writeFileSync(path.join(outside, "sub", "train.jsonl"), SECRET);
  const fd = openInputSync(path.join(sub, "train.jsonl"));
  try {
    renameSync(sub, path.join(root, "sub-moved"));
    symlinkSync(path.join(outside, "sub"), sub);
    assert.equal(readFileSync(fd, "utf8"), "checked\n");
  } finally {
    closeSync(fd);
  }
  assert.match(refusal(() => readRegularFile(path.join(sub, "train.jsonl"))).message, /through the symbolic link sub /);
  // a reader given the walked descriptor's path (the native weight reader) names the file in its errors
  await assert.rejects(
    withInputPath(path.join(root, "train.jsonl"), (opened) => Promise.reject(new Error(`cannot read ${opened}`))),
    (err: Error) => err.message === `cannot read ${path.join(root, "train.jsonl")}`,
  );
});

test("a write walk refuses every link, even one that stays inside the root", () => {
  assert.throws(
    () => openBeneath(path.join(root, "latest"), [root], { want: "folder", links: "refuse", label: "output" }),
    /latest: is a symbolic link; outputs are never written through links/,
  );
});
