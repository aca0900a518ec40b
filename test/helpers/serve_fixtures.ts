// Shared by the serving tests: a tiny byte-tokenizer base saved as an HF folder, PEFT adapters of several
// ranks for it, a server on a free port, and small HTTP helpers.
import os from "node:os";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer } from "../../text/tokenizers/hf_tokenizer.js";
import { initModel, saveModel } from "../../hf/hf_model.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import type { LoraSettings } from "../../native/js/addon.js";
import { startServer, type RunningServer, type ServeOptions } from "../../serving/server.js";
import { craftAdapter, tempDir } from "./lora_adapters.js";
import { TINY_BYTE_LLAMA } from "./tiny_model.js";

/** The tiny Llama with a wider init, so adapters and prompts move greedy outputs visibly. */
export const SERVE_BASE_CONFIG = { ...TINY_BYTE_LLAMA, initializer_range: 0.3 };

export async function writeServeBase(dir: string, seed = 3): Promise<string> {
  const config = parseHfConfig(SERVE_BASE_CONFIG, "config.json");
  const model = await initModel(config, seed);
  await saveModel(model, config, dir, { dtype: "F32" });
  return dir;
}

/** Three adapters of different ranks and targets: what one server batches together. */
export const ADAPTER_SETTINGS: Record<string, LoraSettings> = {
  r2: { rank: 2, alpha: 4, dropout: 0, targets: ["q_proj", "v_proj"], rslora: false, seed: 0 },
  r4: {
    rank: 4,
    alpha: 8,
    dropout: 0,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
    rslora: false,
    seed: 0,
  },
  r8: {
    rank: 8,
    alpha: 8,
    dropout: 0,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    rslora: true,
    seed: 0,
  },
};

export function writeServeAdapters(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, settings] of Object.entries(ADAPTER_SETTINGS))
    out[name] = craftAdapter({ settings, cfg: SERVE_BASE_CONFIG });
  return out;
}

export interface ServeFixture {
  work: string;
  baseDir: string;
  adapters: Record<string, string>;
}

export async function serveFixture(): Promise<ServeFixture> {
  const work = tempDir("ringtune-serve-");
  const baseDir = await writeServeBase(path.join(work, "base"));
  return { work, baseDir, adapters: writeServeAdapters() };
}

export async function startTestServer(f: ServeFixture, more: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({
    modelDir: f.baseDir,
    name: "base",
    adapters: Object.entries(f.adapters).map(([name, source]) => ({ name, source })),
    http: { host: "127.0.0.1", port: 0 },
    adapterRoots: [os.tmpdir()], // every fixture folder is made there
    ...more,
  });
}

export function baseUrl(server: RunningServer): string {
  return `http://${server.http!.address}/v1`;
}

/** A JSON reply as the tests read it: fields are reached freely, and the assertions check them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Json }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json };
}

const BPE_FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../test/fixtures/data/bpe-qwen");

/** What the tool-calling base answers every chat with: one tool call in Qwen's tagged form. */
export const TOOL_CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';

/**
 * A base that answers any chat prompt with TOOL_CALL_TEXT, for checking how answers are read back:
 * the Qwen BPE fixture's tokenizer and chat template, the call added as one (non-special) token, every
 * layer's output projections zeroed (so a position's state is its token's embedding alone), and the
 * head set so the prompt's last token ("\n" after the assistant header) predicts the call and the call
 * predicts <|im_end|>.
 */
export async function writeToolCallingBase(dir: string, tokenizerDir = BPE_FIXTURE): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const tok = JSON.parse(readFileSync(path.join(tokenizerDir, "tokenizer.json"), "utf8")) as {
    added_tokens: { id: number }[];
    model: { vocab: Record<string, number> };
  };
  // a loop, not Math.max(...ids): a real vocabulary has more ids than a call may take arguments
  let callId = 0;
  for (const id of [...tok.added_tokens.map((t) => t.id), ...Object.values(tok.model.vocab)])
    callId = Math.max(callId, id + 1);
  tok.added_tokens.push({
    id: callId,
    content: TOOL_CALL_TEXT,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: false,
  } as { id: number });
  writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tok));
  copyFileSync(path.join(tokenizerDir, "tokenizer_config.json"), path.join(dir, "tokenizer_config.json"));
  // the fixture's own EOS; a real Qwen tokenizer's chat EOS, <|im_end|>
  const eos = tokenizerDir === BPE_FIXTURE ? 606 : new HfTokenizer(dir).encode("<|im_end|>")[0]!;
  const config = parseHfConfig(
    {
      ...SERVE_BASE_CONFIG,
      vocab_size: callId + 1,
      max_position_embeddings: 1024,
      bos_token_id: eos,
      eos_token_id: eos,
    },
    "config.json",
  );
  const model = await initModel(config, 9);
  await saveModel(model, config, dir, { dtype: "F32" });
  const tokenizer = new HfTokenizer(dir);
  const newline = tokenizer.encode("<|im_start|>assistant\n").at(-1)!;
  const imEnd = tokenizer.encode("<|im_end|>")[0]!;
  const C = config.native.hiddenSize;
  const data = model.paramData();
  const byName = new Map(model.params().map((p) => [p.name, p]));
  for (const p of model.params())
    if (/o_proj\.weight$|down_proj\.weight$/.test(p.name)) data.fill(0, p.offset, p.offset + p.size);
  const embed = byName.get("model.embed_tokens.weight")!;
  const head = byName.get("lm_head.weight")!;
  const normed = (t: number) => {
    const row = data.subarray(embed.offset + t * C, embed.offset + (t + 1) * C);
    const rms = Math.sqrt(row.reduce((s, x) => s + x * x, 0) / C);
    return Array.from(row, (x) => x / rms);
  };
  data.set(
    normed(newline).map((x) => 10 * x),
    head.offset + callId * C,
  );
  data.set(
    normed(callId).map((x) => 10 * x),
    head.offset + imEnd * C,
  );
  await saveModel(model, config, dir, { dtype: "F32" });
  return dir;
}
