// Outputs are never written through a symbolic link: a link planted at an output path (metrics.jsonl, a
// JSON file, model.safetensors, a model folder) is refused with the path named and its target left as it
// was; a link planted at a temporary name is removed, never written through.
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { MetricsFile } from "../../coordinator/train/metrics_file.js";
import { writeLossPlot } from "../../plot/write_loss_plot.js";
import { parseHfConfig, writeJsonAtomic } from "../../hf/hf_config.js";
import { initModel, saveModel } from "../../hf/hf_model.js";
import {
  appendOutputFile,
  OutputLinkError,
  writeOutputFile,
  writeOutputFileAtomically,
} from "../../files/output_files.js";
import { writeSafetensors } from "../../hf/safetensors.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const top = realpathSync(mkdtempSync(path.join(tmpdir(), "ringtune-output-links-")));
after(() => rmSync(top, { recursive: true, force: true }));

const ORIGINAL = "a file outside the output folder that must not change\n";

/** A fresh output folder and a victim file outside it, with a link to the victim planted at `name`. */
function planted(name: string): { out: string; at: string; victim: string } {
  const out = mkdtempSync(path.join(top, "out-"));
  const victim = path.join(mkdtempSync(path.join(top, "victim-")), "precious.txt");
  writeFileSync(victim, ORIGINAL);
  const at = path.join(out, name);
  symlinkSync(victim, at);
  return { out, at, victim };
}

function isLinkRefusal(at: string) {
  return (e: Error) => {
    assert.ok(e instanceof OutputLinkError || e.message.includes("symbolic link"), `${e.name}: ${e.message}`);
    assert.ok(e.message.includes(at), `names the path: ${e.message}`);
    assert.match(e.message, /symbolic link/);
    return true;
  };
}

test("writing or appending to an output path that is a symbolic link is refused and the target is untouched", async () => {
  for (const write of [writeOutputFile, appendOutputFile, writeOutputFileAtomically]) {
    const { at, victim } = planted("out.txt");
    await assert.rejects(write(at, "overwritten"), isLinkRefusal(at), write.name);
    assert.equal(readFileSync(victim, "utf8"), ORIGINAL, write.name);
    assert.ok(lstatSync(at).isSymbolicLink(), `${write.name} left the link as it was`);
  }
});

test("an atomic write refused at the final name leaves no temporary file behind", async () => {
  const { out, at } = planted("config.json");
  await assert.rejects(writeJsonAtomic(at, { a: 1 }), isLinkRefusal(at));
  assert.deepEqual(readdirSync(out), ["config.json"]);
});

test("a link planted at the temporary name is not written through: the file is written, the target kept", async () => {
  const { out, at: tmpLink, victim } = planted(`trainer_state.json.tmp-${process.pid}`);
  const file = path.join(out, "trainer_state.json");
  await writeOutputFileAtomically(file, '{"step": 3}\n');
  assert.equal(readFileSync(file, "utf8"), '{"step": 3}\n');
  assert.ok(lstatSync(file).isFile());
  assert.equal(readFileSync(victim, "utf8"), ORIGINAL);
  assert.ok(!existsSync(tmpLink), "the planted link is gone");
});

test("the native safetensors writer refuses a link at model.safetensors and never follows one at its temp name", async () => {
  const tensors = [{ name: "w", shape: [2], dtype: "F32" as const, data: Float32Array.of(1, 2) }];
  const { at, victim } = planted("model.safetensors");
  await assert.rejects(writeSafetensors(at, tensors), isLinkRefusal(at));
  assert.equal(readFileSync(victim, "utf8"), ORIGINAL);

  const second = planted(`adapter_model.safetensors.tmp-${process.pid}`);
  const file = path.join(second.out, "adapter_model.safetensors");
  await writeSafetensors(file, tensors);
  assert.ok(lstatSync(file).isFile());
  assert.equal(readFileSync(second.victim, "utf8"), ORIGINAL);
});

test("metrics.jsonl planted as a link: the coordinator's metrics writer refuses it", async () => {
  const { at, victim } = planted("metrics.jsonl");
  const metrics = new MetricsFile(at);
  await assert.rejects(metrics.startAt(0), isLinkRefusal(at));
  await assert.rejects(metrics.append({ step: 1, loss: 2 }), isLinkRefusal(at));
  assert.equal(readFileSync(victim, "utf8"), ORIGINAL);
});

test("loss.png planted as a link: the plot writer refuses it", async () => {
  const { out, at, victim } = planted("loss.png");
  writeFileSync(path.join(out, "metrics.jsonl"), JSON.stringify({ step: 1, loss: 2 }) + "\n");
  await assert.rejects(writeLossPlot(out), isLinkRefusal(at));
  assert.equal(readFileSync(victim, "utf8"), ORIGINAL);
});

test("a model folder that is a link is refused before any weight is written", async () => {
  const out = mkdtempSync(path.join(top, "out-"));
  const elsewhere = mkdtempSync(path.join(top, "elsewhere-"));
  const at = path.join(out, "final");
  symlinkSync(elsewhere, at);
  const config = parseHfConfig(TINY_BYTE_LLAMA, "config.json");
  await assert.rejects(saveModel(await initModel(config, 1), config, at, { dtype: "F32" }), isLinkRefusal(at));
  assert.deepEqual(readdirSync(elsewhere), []);
  mkdirSync(path.join(out, "real"));
  await saveModel(await initModel(config, 1), config, path.join(out, "real"), { dtype: "F32" });
  assert.ok(existsSync(path.join(out, "real", "model.safetensors")), "a real folder is written as before");
});
