// `ringtune generate` and `ringtune export --merge` with --device cuda-emu run the model (its KV cache, the
// adapter, the merge) on the CUDA backend run by the CUDA emulator: generate gives --device cpu's tokens
// token for token, with and without an adapter, and export writes the files --device cpu writes, the weights
// within fp32 rounding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { loadAddon } from "../../native/js/addon.js";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";
import { runCli } from "../helpers/run_cli.js";
import { serveFixture } from "../helpers/serve_fixtures.js";

const skip = !loadAddon().cudaEmu && "the addon does not link the CUDA emulator";
const PROMPT = "72,101,108,108,111,44,32";

async function generated(device: string, baseDir: string, adapterDir?: string): Promise<number[]> {
  const args = ["generate", "--device", device, "--model", baseDir, "--prompt-ids", PROMPT, "--max-new", "8"];
  if (adapterDir) args.push("--adapter", adapterDir);
  const r = await runCli(args, {}, 120_000);
  assert.equal(r.code, 0, r.stderr);
  // a device other than the CPU says which backend computed
  if (device === "cuda-emu") assert.match(r.stderr, /generated on cuda:0 /);
  return r.stdout.trim().split(",").map(Number);
}

test(
  "generate --device cuda-emu equals --device cpu token for token, for the base and with an adapter",
  { skip },
  async () => {
    const f = await serveFixture();
    const base = await generated("cpu", f.baseDir);
    assert.deepEqual(await generated("cuda-emu", f.baseDir), base, "base");
    const adapted = await generated("cpu", f.baseDir, f.adapters.r8);
    assert.notDeepEqual(adapted, base, "the adapter must change the greedy tokens");
    assert.deepEqual(await generated("cuda-emu", f.baseDir, f.adapters.r8), adapted, "adapter r8");
  },
);

test(
  "export --merge --device cuda-emu writes the files --device cpu writes, weights within fp32 rounding",
  { skip },
  async () => {
    const f = await serveFixture();
    const out: Record<string, string> = {};
    for (const device of ["cpu", "cuda-emu"]) {
      out[device] = path.join(f.work, `merged-${device}`);
      const r = await runCli(
        [
          "export",
          "--merge",
          "--device",
          device,
          "--model",
          f.baseDir,
          "--adapter",
          f.adapters.r4!,
          "--out",
          out[device]!,
        ],
        {},
        120_000,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, device === "cpu" ? /merged on cpu$/m : /merged on cuda:0 /);
    }
    const cpuDir = out.cpu!;
    const emuDir = out["cuda-emu"]!;
    const files = readdirSync(cpuDir).sort();
    assert.deepEqual(readdirSync(emuDir).sort(), files);
    for (const file of files.filter((n) => n !== "model.safetensors"))
      assert.equal(readFileSync(path.join(emuDir, file), "utf8"), readFileSync(path.join(cpuDir, file), "utf8"), file);
    const cpuHeader = await readSafetensorsHeader(path.join(cpuDir, "model.safetensors"));
    const emuHeader = await readSafetensorsHeader(path.join(emuDir, "model.safetensors"));
    const names = [...cpuHeader.tensors.keys()];
    assert.deepEqual([...emuHeader.tensors.keys()], names);
    const want = await readTensorsF32(cpuHeader, names);
    const got = await readTensorsF32(emuHeader, names);
    const base = await readTensorsF32(await readSafetensorsHeader(path.join(f.baseDir, "model.safetensors")), names);
    let merged = 0;
    for (const name of names) {
      const w = want.get(name)!;
      const g = got.get(name)!;
      assert.deepEqual(emuHeader.tensors.get(name)!.shape, cpuHeader.tensors.get(name)!.shape, name);
      for (let i = 0; i < w.length; i++) {
        const tol = 1e-6 + 1e-5 * Math.abs(w[i]!);
        if (!(Math.abs(g[i]! - w[i]!) <= tol)) assert.fail(`${name}[${i}]: cuda-emu ${g[i]}, cpu ${w[i]}`);
      }
      if (w.some((x, i) => x !== base.get(name)![i])) merged++;
    }
    // the adapter r4 targets q, k, v, o and down in each of the two layers: those weights changed
    assert.equal(merged, 10, "the merge changed other tensors than the adapter's targets");
  },
);
