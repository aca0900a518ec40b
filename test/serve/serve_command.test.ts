// `ringtune serve` as a user runs it: it prints where it serves, answers there with the base and the
// adapters named on the command line, and exits cleanly on SIGTERM; bad flags are usage errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { RINGTUNE_CLI, runRingtune } from "../helpers/processes.js";
import { serveFixture } from "../helpers/serve_fixtures.js";

test("ringtune serve --model --adapter --http serves both names and stops on SIGTERM", async () => {
  const f = await serveFixture();
  const child = spawn(
    process.execPath,
    [RINGTUNE_CLI, "serve", "--model", f.baseDir, "--adapter", `tuned=${f.adapters.r4}`, "--http", "127.0.0.1:0"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
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
