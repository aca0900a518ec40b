// `ringtune serve` as a user runs it: it prints where it serves, answers there with the base and the
// adapters named on the command line, and exits cleanly on SIGTERM; bad flags are usage errors. It reads only
// under its --data-root: a model or adapter named elsewhere is refused naming the path and the root, and an
// adapter folder under the root whose weights are a link to a file outside cannot be loaded at run time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { RINGTUNE_CLI, runRingtune } from "../helpers/processes.js";
import { postJson, serveFixture } from "../helpers/serve_fixtures.js";

test("ringtune serve --model --adapter --http serves both names, reads nothing outside its roots, stops on SIGTERM", async () => {
  const f = await serveFixture();
  // the roots: the base's folder and the served adapter's; the other fixture adapters lie outside them
  const roots = [f.work, f.adapters.r4!];
  const args = ["serve", "--model", f.baseDir, "--adapter", `tuned=${f.adapters.r4}`, "--http", "127.0.0.1:0"];
  const child = spawn(process.execPath, [RINGTUNE_CLI, ...args, "--data-root", roots.join(":")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (b) => (stderr += b));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'serving' line within 60 s: ${stdout}\n${stderr}`)), 60_000);
      child.stdout.on("data", (b) => {
        stdout += b;
        const m = /serving (.*) on (http:\/\/\S+)/.exec(stdout);
        if (m) {
          clearTimeout(timer);
          assert.equal(m[1], "base, tuned");
          resolve(m[2]!);
        }
      });
      void exited.then((code) => reject(new Error(`serve exited (${code}): ${stderr}`)));
    });
    const models = (await (await fetch(`${url}/models`)).json()) as { data: { id: string; parent: string | null }[] };
    assert.deepEqual(
      models.data.map((m) => [m.id, m.parent]),
      [
        ["base", null],
        ["tuned", "base"],
      ],
    );
    const r = await fetch(`${url}/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "tuned", prompt: "Hi", max_tokens: 3, temperature: 0, ignore_eos: true }),
    });
    assert.equal(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 3);

    // an adapter folder under the root whose weights are a link to another adapter's, outside the roots
    const planted = path.join(f.work, "planted");
    mkdirSync(planted);
    copyFileSync(path.join(f.adapters.r2!, "adapter_config.json"), path.join(planted, "adapter_config.json"));
    const outside = path.join(f.adapters.r2!, "adapter_model.safetensors");
    symlinkSync(outside, path.join(planted, "adapter_model.safetensors"));
    const load = await postJson(`${url}/load_lora_adapter`, { lora_name: "planted", lora_path: planted });
    assert.ok(load.status >= 400 && load.status < 500, `loaded through a link out: ${JSON.stringify(load.json)}`);
    assert.match(
      JSON.stringify(load.json),
      /planted\/adapter_model\.safetensors: leads out of the input roots through the symbolic link/,
    );
    assert.ok(!JSON.stringify(load.json).includes(f.adapters.r2!), "the refusal shows the outside path");
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await exited, 0, stderr);
});

test("a malformed --adapter is a usage error that shows the expected form", async () => {
  const r = await runRingtune(["serve", "--model", "/nonexistent", "--adapter", "no-equals-sign"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--adapter must be NAME=DIR or NAME=JOB_ID, got 'no-equals-sign'/);
});

test("ringtune serve refuses a model or an adapter outside its --data-root, naming the path and the root", async () => {
  const f = await serveFixture();
  const elsewhere = path.join(os.tmpdir(), "ringtune-serve-no-such-root");
  // a server that starts anyway runs until the timeout ends it
  const within = { timeoutMs: 30_000 };
  const model = await runRingtune(
    ["serve", "--model", f.baseDir, "--data-root", elsewhere, "--http", "127.0.0.1:0"],
    within,
  );
  assert.equal(model.code, 1, model.stderr);
  assert.ok(
    model.stderr.includes(`--model: '${f.baseDir}' is outside the server's data root(s) ${elsewhere} (--data-root)`),
    model.stderr,
  );
  const adapter = await runRingtune(
    [
      "serve",
      ...["--model", f.baseDir, "--adapter", `tuned=${f.adapters.r4}`, "--data-root", f.work, "--http", "127.0.0.1:0"],
    ],
    within,
  );
  assert.equal(adapter.code, 1, adapter.stderr);
  assert.ok(
    adapter.stderr.includes(`--adapter tuned: '${f.adapters.r4}' is outside the server's data root(s) ${f.work}`),
    adapter.stderr,
  );
});
