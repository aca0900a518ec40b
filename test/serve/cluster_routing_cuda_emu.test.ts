// A worker started with --device cuda-emu --serve serves on its own model device: the base and its adapters on
// the CUDA backend run by the CUDA emulator. Requests the coordinator routes to it give `ringtune generate
// --device cpu`'s greedy tokens.
import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { loadAddon } from "../../native/js/addon.js";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { startNatsServer } from "../helpers/nats_server.js";
import { freePort, waitUntil } from "../helpers/processes.js";
import { runCli } from "../helpers/run_cli.js";
import { postJson, serveFixture } from "../helpers/serve_fixtures.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";

const PROMPT = [72, 101, 108, 108, 111, 44, 32];
const MAX_NEW = 6;

test(
  "a cuda-emu worker serves routed requests on the device with the CPU's greedy tokens",
  { timeout: 300_000, skip: !loadAddon().cudaEmu && "the addon does not link the CUDA emulator" },
  async () => {
    const nats = await startNatsServer();
    const f = await serveFixture();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/v1`;
    CoordinatorProcess.start(nats.url, ["--serve-http", `127.0.0.1:${port}`]);
    const serveArgs = ["--serve", f.baseDir, "--serve-name", "base", "--serve-adapter", `r4=${f.adapters.r4}`];
    const worker = WorkerProcess.start(nats.url, "serve-emu", [
      "--device",
      "cuda-emu",
      ...serveArgs,
      "--adapter-root",
      os.tmpdir(),
    ]);
    try {
      await waitUntil(
        async () => worker.log.includes("registered with the coordinator") && worker.log.includes('"msg":"serving"'),
        "the worker to serve and register",
        120_000,
      ).catch((err: Error) => assert.fail(`${err.message}\n${worker.log.slice(-4000)}`));
      // the served base is the device's: the CUDA backend computes it
      assert.match(worker.log, /"backend":"cuda:0 [^"]*","msg":"serving"/);
      await waitUntil(
        async () => {
          const r = await fetch(`${url}/models`).catch(() => null);
          const ids = r ? ((await r.json()) as { data: { id: string }[] }).data.map((m) => m.id) : [];
          return ids.includes("r4");
        },
        "the coordinator to list the served models",
        60_000,
      );
      for (const [model, adapter] of [
        ["base", null],
        ["r4", f.adapters.r4!],
      ] as const) {
        const served = await postJson(`${url}/completions`, {
          model,
          prompt: PROMPT,
          max_tokens: MAX_NEW,
          temperature: 0,
          return_token_ids: true,
        });
        assert.equal(served.status, 200, JSON.stringify(served.json));
        const args = ["generate", "--device", "cpu", "--model", f.baseDir, "--prompt-ids", PROMPT.join(",")];
        args.push("--max-new", String(MAX_NEW), ...(adapter ? ["--adapter", adapter] : []));
        const cpu = await runCli(args, {}, 60_000);
        assert.equal(cpu.code, 0, cpu.stderr);
        assert.deepEqual(served.json.choices[0].token_ids, cpu.stdout.trim().split(",").map(Number), model);
      }
    } finally {
      await killAllWorkerProcesses();
      await killAllCoordinatorProcesses();
      await nats.stop();
    }
  },
);
