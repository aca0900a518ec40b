// `ringtune serve --device cuda-emu`: the base, two PEFT adapters and every sequence's KV cache on the CUDA
// backend run by the CUDA emulator, served by the real process over HTTP with the adapters loaded as serve
// loads them, give `ringtune generate --device cpu`'s greedy tokens for the base and for each adapter (asked
// at once, so the server's continuous batching mixes them in its steps).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import os from "node:os";
import { loadAddon } from "../../native/js/addon.js";
import { RINGTUNE_CLI } from "../helpers/processes.js";
import { runCli } from "../helpers/run_cli.js";
import { baseUrl, postJson, serveFixture, startTestServer, type ServeFixture } from "../helpers/serve_fixtures.js";

const PROMPT = [72, 101, 108, 108, 111, 44, 32];
const MAX_NEW = 6;

async function cpuTokens(f: ServeFixture, adapterDir: string | null): Promise<number[]> {
  const args = ["generate", "--device", "cpu", "--model", f.baseDir, "--prompt-ids", PROMPT.join(",")];
  args.push("--max-new", String(MAX_NEW));
  if (adapterDir) args.push("--adapter", adapterDir);
  const r = await runCli(args, {}, 60_000);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split(",").map(Number);
}

test(
  "serve --device cuda-emu answers the base and two adapters with generate --device cpu's greedy tokens",
  { timeout: 240_000, skip: !loadAddon().cudaEmu && "the addon does not link the CUDA emulator" },
  async () => {
    const f = await serveFixture();
    const adapters = { r2: f.adapters.r2!, r8: f.adapters.r8! };
    const args = ["serve", "--device", "cuda-emu", "--model", f.baseDir, "--name", "base", "--http", "127.0.0.1:0"];
    args.push("--data-root", os.tmpdir()); // where the fixture's base and adapters are
    for (const [name, dir] of Object.entries(adapters)) args.push("--adapter", `${name}=${dir}`);
    const child = spawn(process.execPath, [RINGTUNE_CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (b) => (stderr += b));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const served: Record<string, number[]> = {};
    try {
      const [, names, url, backend] = await new Promise<RegExpExecArray>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no 'serving' line in 60 s: ${stdout}\n${stderr}`)), 60_000);
        child.stdout.on("data", (b) => {
          stdout += b;
          const m = /serving (.*) on (http:\/\/\S+) \(computed on (.*)\)/.exec(stdout);
          if (!m) return;
          clearTimeout(timer);
          resolve(m);
        });
        void exited.then((code) => reject(new Error(`serve exited (${code}): ${stderr}`)));
      });
      assert.equal(names, "base, r2, r8");
      // the CUDA backend computes, not the CPU's
      assert.match(backend!, /^cuda:0 /);
      const models = ["base", "r2", "r8"];
      const replies = await Promise.all(
        models.map((model) =>
          postJson(`${url}/completions`, {
            model,
            prompt: PROMPT,
            max_tokens: MAX_NEW,
            temperature: 0,
            return_token_ids: true,
          }),
        ),
      );
      replies.forEach((r, i) => {
        assert.equal(r.status, 200, JSON.stringify(r.json));
        served[models[i]!] = r.json.choices[0].token_ids as number[];
      });
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(served.base, await cpuTokens(f, null), "base");
    for (const [name, dir] of Object.entries(adapters)) assert.deepEqual(served[name], await cpuTokens(f, dir), name);
    // the adapters changed what was decoded: each match is the adapter's, not the base's
    assert.notDeepEqual(served.r2, served.base);
    assert.notDeepEqual(served.r8, served.base);
  },
);

test(
  "a bf16 base served on cuda-emu decodes what the bf16 base served on the CPU decodes, with and without an adapter",
  { timeout: 240_000, skip: !loadAddon().cudaEmu && "the addon does not link the CUDA emulator" },
  async () => {
    const f = await serveFixture();
    const tokens: Record<string, number[][]> = {};
    for (const device of ["cpu", "cuda-emu"] as const) {
      const server = await startTestServer(f, { device, baseBf16: true, batchWindowMs: 500 });
      try {
        assert.equal(server.ctx.catalog.base.model.memory().baseBytesPerParam, 2);
        const replies = await Promise.all(
          ["base", "r4"].map((model) =>
            postJson(`${baseUrl(server)}/completions`, {
              model,
              prompt: PROMPT,
              max_tokens: MAX_NEW,
              temperature: 0,
              return_token_ids: true,
            }),
          ),
        );
        tokens[device] = replies.map((r) => {
          assert.equal(r.status, 200, JSON.stringify(r.json));
          return r.json.choices[0].token_ids as number[];
        });
      } finally {
        await server.close();
      }
    }
    assert.deepEqual(tokens["cuda-emu"], tokens.cpu);
    assert.notDeepEqual(tokens.cpu![1], tokens.cpu![0], "the adapter must change the greedy tokens");
  },
);
