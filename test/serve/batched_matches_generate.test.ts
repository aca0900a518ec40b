// Greedy outputs through the server equal `ringtune generate --adapter` for three adapters of different
// ranks and targets and the base alone, with all four requests decoded in the same batch.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import type { RunningServer } from "../../serving/server.js";
import { runCli } from "../helpers/run_cli.js";
import { baseUrl, postJson, serveFixture, startTestServer, type ServeFixture } from "../helpers/serve_fixtures.js";

let fixture: ServeFixture;
let server: RunningServer;

before(async () => {
  fixture = await serveFixture();
  // A wide batch window: the four requests below arrive together and must start in one batch even on a
  // loaded machine.
  server = await startTestServer(fixture, { batchWindowMs: 1_000 });
});

after(async () => {
  await server?.close();
});

const PROMPT = [72, 101, 108, 108, 111, 44, 32];
const MAX_NEW = 12;

async function cliTokens(adapterDir: string | null): Promise<number[]> {
  const args = ["generate", "--model", fixture.baseDir, "--prompt-ids", PROMPT.join(","), "--max-new", String(MAX_NEW)];
  if (adapterDir) args.push("--adapter", adapterDir);
  const r = await runCli(args, {}, 60_000);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split(",").map(Number);
}

test("three adapters of ranks 2, 4 and 8 and the base, served in one batch, generate what `ringtune generate` does", async () => {
  const models = ["base", "r2", "r4", "r8"];
  const replies = await Promise.all(
    models.map((model) =>
      postJson(`${baseUrl(server)}/completions`, {
        model,
        prompt: PROMPT,
        max_tokens: MAX_NEW,
        temperature: 0,
        return_token_ids: true,
      }),
    ),
  );
  const served: Record<string, number[]> = {};
  replies.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    served[models[i]!] = r.json.choices[0].token_ids as number[];
    assert.deepEqual(r.json.choices[0].prompt_token_ids, PROMPT);
  });
  assert.ok(
    server.ctx.engine.stepSizes.includes(4),
    `the four requests were never decoded in one step (step sizes ${server.ctx.engine.stepSizes.join(",")})`,
  );
  for (const model of models) {
    const expected = await cliTokens(model === "base" ? null : fixture.adapters[model]!);
    assert.deepEqual(served[model], expected, `model ${model}`);
  }
  // The adapters must matter, or equal outputs would prove nothing about per-row adapters.
  const distinct = new Set(Object.values(served).map((t) => t.join(",")));
  assert.ok(distinct.size >= 3, `only ${distinct.size} distinct outputs: ${JSON.stringify(served)}`);
});
