// final/ appears whole or not at all (coordinator/train/final_swap.ts): a save that stops halfway leaves the
// earlier final/ as it was; the next save clears what it left and replaces final/ by one rename; a crash
// between the two renames of an exchange leaves the earlier final/ whole beside, and the next save completes.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { publishFinal, stageFinal } from "../../coordinator/train/final_swap.js";

function writeModel(dir: string, content: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "model.safetensors"), content);
  writeFileSync(path.join(dir, "config.json"), "{}");
}

const read = (dir: string) => readFileSync(path.join(dir, "model.safetensors"), "utf8");

test("a save stopped halfway leaves the earlier final/ whole; the next save replaces it by a rename", async () => {
  const output = mkdtempSync(path.join(tmpdir(), "ringtune-final-"));
  try {
    const final = path.join(output, "final");
    writeModel(final, "earlier");
    // a save that died after its first file
    const staged = await stageFinal(output);
    mkdirSync(staged);
    writeFileSync(path.join(staged, "model.safetensors"), "half");
    assert.equal(read(final), "earlier");
    assert.deepEqual(readdirSync(final).sort(), ["config.json", "model.safetensors"]);
    // the next save starts clean and publishes only once complete
    assert.equal(await stageFinal(output), staged);
    assert.ok(!existsSync(staged), "what the stopped save left is gone");
    writeModel(staged, "new");
    assert.equal(read(final), "earlier");
    await publishFinal(output);
    assert.equal(read(final), "new");
    assert.deepEqual(readdirSync(output).sort(), ["final"]);
  } finally {
    rmSync(output, { recursive: true, force: true });
  }
});

test("a crash between the two renames leaves the earlier final/ whole beside; the next save completes", async () => {
  const output = mkdtempSync(path.join(tmpdir(), "ringtune-final-"));
  try {
    writeModel(path.join(output, "final"), "earlier");
    // the first rename done, then the crash
    await rename(path.join(output, "final"), path.join(output, "final.replaced"));
    assert.equal(read(path.join(output, "final.replaced")), "earlier");
    writeModel(await stageFinal(output), "new");
    await publishFinal(output);
    assert.equal(read(path.join(output, "final")), "new");
    assert.deepEqual(readdirSync(output).sort(), ["final"]);
    // a first save, with no final/ yet
    writeModel(await stageFinal(output), "newer");
    await publishFinal(output);
    assert.equal(read(path.join(output, "final")), "newer");
  } finally {
    rmSync(output, { recursive: true, force: true });
  }
});
