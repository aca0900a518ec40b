// A base held in bf16 for serving: half the base's bytes in the decoder's memory report, the model's fp32
// weights freed, and outputs within bf16 rounding of the fp32 base's: greedy tokens equal for the base and
// adapters of three ranks decoded in one batch, except where the fp32 base's top two tokens nearly tie
// (rounding may flip such a choice, and the texts part there).
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import type { RunningServer } from "../../serving/server.js";
import { baseUrl, postJson, serveFixture, startTestServer, type Json } from "../helpers/serve_fixtures.js";

let fp32: RunningServer;
let bf16: RunningServer;

before(async () => {
  const fixture = await serveFixture();
  fp32 = await startTestServer(fixture, { batchWindowMs: 500 });
  bf16 = await startTestServer(fixture, { batchWindowMs: 500, baseBf16: true });
});

after(async () => {
  await fp32?.close();
  await bf16?.close();
});

const PROMPTS = [
  [72, 101, 108, 108, 111, 44, 32],
  [84, 104, 101, 32, 113, 117, 105, 99, 107],
];
const MODELS = ["base", "r2", "r4", "r8"];
/**
 * bf16 keeps 8 bits of mantissa (relative error 2^-9 per weight); through this wide-init fixture's layers
 * that moves log-probabilities by up to about 0.08, so a choice whose fp32 lead is below twice that may flip.
 */
const LOGPROB_TOLERANCE = 0.15;
const NEAR_TIE = 0.2;

async function greedy(server: RunningServer, model: string, prompt: number[]): Promise<Json> {
  const r = await postJson(`${baseUrl(server)}/completions`, {
    model,
    prompt,
    max_tokens: 12,
    temperature: 0,
    ignore_eos: true,
    return_token_ids: true,
    logprobs: 2,
    return_tokens_as_token_ids: true,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.choices[0];
}

test("the bf16 base's decoder reports half the base's bytes, and the model's fp32 weights are gone", () => {
  const a = fp32.decoder.memory();
  const b = bf16.decoder.memory();
  assert.equal(a.baseBytesPerParam, 4);
  assert.equal(b.baseBytesPerParam, 2);
  assert.equal(b.base * 2, a.base);
  assert.equal(b.adapters, a.adapters, "adapters stay in fp32");
  const model = bf16.ctx.catalog.base.model;
  assert.ok(model.baseDataBf16() !== null);
  assert.throws(() => model.paramData(), /held in bf16/);
});

test("greedy tokens from the bf16 base equal the fp32 base's for the base and three adapters, but where fp32 itself nearly ties", async () => {
  let compared = 0;
  let total = 0;
  for (const prompt of PROMPTS) {
    const [a, b] = await Promise.all([
      Promise.all(MODELS.map((m) => greedy(fp32, m, prompt))),
      Promise.all(MODELS.map((m) => greedy(bf16, m, prompt))),
    ]);
    MODELS.forEach((m, i) => {
      const ta = a[i].token_ids as number[];
      const tb = b[i].token_ids as number[];
      const la = a[i].logprobs;
      const lb = b[i].logprobs;
      total += ta.length;
      // Position by position up to the first difference; after it the two continue different texts.
      for (let j = 0; j < ta.length; j++) {
        const d = Math.abs(la.token_logprobs[j] - lb.token_logprobs[j]);
        assert.ok(d < LOGPROB_TOLERANCE, `${m}, token ${j}: log-probabilities differ by ${d}`);
        if (ta[j] !== tb[j]) {
          const [first, second] = Object.values(la.top_logprobs[j] as Record<string, number>);
          assert.ok(
            first! - second! < NEAR_TIE,
            `${m}, prompt ${prompt.join(",")}: token ${j} differs (${ta[j]} vs ${tb[j]}) where fp32 leads by ${first! - second!}`,
          );
          break;
        }
        compared++;
      }
    });
    MODELS.forEach((m, i) =>
      assert.ok(
        (a[i].logprobs.token_logprobs as number[]).some((x, j) => x !== b[i].logprobs.token_logprobs[j]),
        `${m}: identical log-probabilities: the bf16 base was not in use`,
      ),
    );
  }
  assert.ok(compared >= total * 0.75, `only ${compared} of ${total} greedy tokens could be compared`);
  assert.ok(bf16.ctx.engine.stepSizes.includes(4), "the four models never decoded in one step");
});
