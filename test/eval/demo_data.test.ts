// The bundled `make demo` job: its data generator and its spec (test/e2e/demo_script.test.ts runs it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execFileSync } from "node:child_process";
import { setupText } from "../../spec/text_setup.js";
import { HfTokenizer } from "../../text/tokenizers/hf_tokenizer.js";
import { loadEvalPrompts } from "../../coordinator/eval/generation_eval.js";
import { loadSpec } from "../../spec/load.js";

/** dist/test/eval -> repository root */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const demo = path.join(repoRoot, "examples/demo");

interface DemoRecord {
  task_type: string;
  messages: { role: string; content: string }[];
}
type MakeDemoData = (o?: { train?: number; heldout?: number; seed?: number }) => {
  train: DemoRecord[];
  heldout: DemoRecord[];
};

async function generator(): Promise<MakeDemoData> {
  const mod = (await import(pathToFileURL(path.join(demo, "make_data.mjs")).href)) as { makeDemoData: MakeDemoData };
  return mod.makeDemoData;
}

const readJsonl = (f: string): DemoRecord[] =>
  readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as DemoRecord);
const sentence = (r: DemoRecord) => r.messages.find((m) => m.role === "user")!.content;
const answer = (r: DemoRecord) => JSON.parse(r.messages[r.messages.length - 1].content) as Record<string, unknown>;

test("the generator is deterministic and the committed files are its output", () => {
  const out = mkdtempSync(path.join(os.tmpdir(), "ringtune-demo-data-"));
  execFileSync(process.execPath, [path.join(demo, "make_data.mjs"), "--out", out], { stdio: "pipe" });
  for (const f of ["train.jsonl", "heldout.jsonl"]) {
    assert.equal(
      readFileSync(path.join(out, f), "utf8"),
      readFileSync(path.join(demo, f), "utf8"),
      `${f} differs from a fresh run`,
    );
  }
});

test("demo data: two task types, JSON answers copied from the sentence, held-out names and orders never in train", async () => {
  const make = await generator();
  const a = make({ train: 300, heldout: 40 });
  assert.deepEqual(a, make({ train: 300, heldout: 40 }));
  const train = readJsonl(path.join(demo, "train.jsonl"));
  const heldout = readJsonl(path.join(demo, "heldout.jsonl"));
  assert.ok(train.length >= 1000 && heldout.length >= 50);
  for (const r of [...train, ...heldout]) {
    assert.match(r.task_type, /^extract\/(person|order)$/);
    assert.deepEqual(
      r.messages.map((m) => m.role),
      ["system", "user", "assistant"],
    );
    assert.equal(r.messages[0].content, "Answer with JSON only.");
    const ans = answer(r);
    assert.deepEqual(
      Object.keys(ans),
      r.task_type === "extract/person" ? ["name", "age", "city"] : ["order", "qty", "item", "city"],
    );
    for (const v of Object.values(ans)) assert.ok(sentence(r).includes(String(v)), `${sentence(r)} lacks ${v}`);
  }
  for (const t of ["extract/person", "extract/order"]) assert.ok(heldout.filter((r) => r.task_type === t).length >= 20);
  // several sentence patterns per task: count distinct shapes with the values blanked out
  const shapes = new Set(
    train.map((r) => Object.values(answer(r)).reduce<string>((s, v) => s.replace(String(v), "_"), sentence(r))),
  );
  assert.ok(shapes.size >= 8, `only ${shapes.size} sentence patterns`);
  // no sentence, full name or order number of the held-out set occurs in train
  const trainSentences = new Set(train.map(sentence));
  assert.equal(heldout.filter((r) => trainSentences.has(sentence(r))).length, 0);
  assert.equal(trainSentences.size, train.length, "duplicate sentences in train");
  const key = (r: DemoRecord) => {
    const x = answer(r);
    return r.task_type === "extract/person" ? `name ${x.name}` : `order ${x.order}`;
  };
  const trainKeys = new Set(train.map(key));
  for (const r of heldout) assert.ok(!trainKeys.has(key(r)), `held-out ${key(r)} occurs in train`);
});

test("the demo job spec parses and its held-out prompts load", () => {
  const spec = loadSpec(path.join(demo, "job.yaml"));
  assert.equal(spec.workers, 2);
  assert.equal(spec.template, "chatml");
  assert.equal(spec.tokenizer, path.join(demo, "tokenizer"));
  assert.equal(spec.data[0].response_format, "json");
  assert.equal(spec.generation_eval?.path, path.join(demo, "heldout.jsonl"));
  assert.equal(spec.output, path.join(repoRoot, "runs/demo"));
  const setup = setupText(spec);
  const cfg = JSON.parse(readFileSync(spec.model.init!.config, "utf8")) as {
    vocab_size: number;
    max_position_embeddings: number;
    eos_token_id: number[];
  };
  assert.ok(
    cfg.vocab_size >= setup.tokenizer.vocabSize,
    `vocab_size ${cfg.vocab_size} < the tokenizer's ${setup.tokenizer.vocabSize}`,
  );
  // generate and other servers stop on the model's eos: ChatML's <|im_end|> must be among them
  assert.ok(cfg.eos_token_id.includes(setup.tokenizer.eosId), `eos_token_id lacks ${setup.tokenizer.eosId}`);
  assert.ok(cfg.max_position_embeddings >= spec.seq_len);
  const prompts = loadEvalPrompts(spec, setup);
  assert.equal(prompts.length, readJsonl(path.join(demo, "heldout.jsonl")).length);
  assert.ok(prompts.every((p) => p.ids.length + spec.generation_eval!.max_new_tokens <= spec.seq_len));
});

test("the demo's tokenizer is make_tokenizer.mjs's output, and every word the model copies is one token", async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), "ringtune-demo-tokenizer-"));
  execFileSync(process.execPath, [path.join(demo, "make_tokenizer.mjs"), "--out", out], { stdio: "pipe" });
  for (const f of ["tokenizer.json", "tokenizer_config.json"])
    assert.equal(
      readFileSync(path.join(out, f), "utf8"),
      readFileSync(path.join(demo, "tokenizer", f), "utf8"),
      `tokenizer/${f} differs from a fresh run`,
    );
  const pools = (await import(pathToFileURL(path.join(demo, "make_data.mjs")).href)) as Record<string, string[]>;
  const tokenizer = new HfTokenizer(path.join(demo, "tokenizer"));
  // as the sentences and the JSON answers write them: first names, cities and items start a sentence or a
  // JSON string and follow a space; last names always follow the first name's space
  const forms = [...pools.FIRST, ...pools.CITY, ...pools.ITEM].flatMap((w) => [w, ` ${w}`]);
  forms.push(...pools.LAST.map((w) => ` ${w}`));
  const split = forms.filter((w) => tokenizer.encode(w).length !== 1);
  assert.deepEqual(split, [], "words the model would copy in pieces");
  // digits stay one token each, so an order number the model never saw is still copied digit by digit
  assert.equal(tokenizer.encode("5019").length, 4);
  assert.equal(tokenizer.decode(tokenizer.encode('{"name":"Helen Kim","age":81}')), '{"name":"Helen Kim","age":81}');
});
