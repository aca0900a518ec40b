// Data pipeline throughput: read + check + template + tokenize + mask + pack on a generated corpus of
// 100k records, for the byte tokenizer and for a BPE tokenizer.json; tokens/s, peak memory, and the
// BPE/byte ratio measured in the same run. Each tokenizer runs in its own process so peaks are its own.
// Run: make bench-data   (or: node dist/bench/data_pipeline.js [--records N])
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildDataset } from "../coordinator/data/pipeline.js";
import { parseSpec } from "../coordinator/job_spec/load.js";
import { makeRng } from "../coordinator/data/rng.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const WORDS =
  "the quick brown fox jumps over lazy dog what is capital of France Paris answer question please think step by step first add numbers then divide result function returns sum weather sunny today story dragon knight summarize report sales increased percent year 你好 天气 很好 翻译".split(
    " ",
  );

function sentence(rng: () => number, n: number): string {
  const w: string[] = [];
  for (let i = 0; i < n; i++) w.push(WORDS[Math.floor(rng() * WORDS.length)]);
  return w.join(" ") + ".";
}

/** A mix like real SFT data: alpaca, multi-turn sharegpt, OpenAI tool calls, and plain text. */
function generateCorpus(dir: string, records: number): string {
  const rng = makeRng(42);
  const lines: string[] = [];
  for (let i = 0; i < records; i++) {
    const kind = i % 10;
    const task = `bench/t${i % 7}`;
    const q = `${i} ${sentence(rng, 8 + Math.floor(rng() * 40))}`;
    const a = sentence(rng, 10 + Math.floor(rng() * 80));
    if (kind < 5) lines.push(JSON.stringify({ instruction: q, input: "", output: a, task_type: task }));
    else if (kind < 8)
      lines.push(
        JSON.stringify({
          conversations: [
            { from: "human", value: q },
            { from: "gpt", value: a },
            { from: "human", value: sentence(rng, 6) },
            { from: "gpt", value: sentence(rng, 20) },
          ],
          task_type: task,
        }),
      );
    else if (kind < 9)
      lines.push(
        JSON.stringify({
          messages: [
            { role: "user", content: q },
            {
              role: "assistant",
              content: null,
              tool_calls: [{ type: "function", function: { name: "lookup", arguments: `{"q": "${i}"}` } }],
            },
            { role: "tool", content: a },
            { role: "assistant", content: sentence(rng, 15) },
          ],
          task_type: task,
        }),
      );
    else lines.push(JSON.stringify({ text: `${q} ${a} ${sentence(rng, 100)}`, task_type: "bench/text" }));
  }
  const file = path.join(dir, "corpus.jsonl");
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

function runOne(tokenizer: string, corpus: string): void {
  const spec = parseSpec(
    {
      model: { init: { config: "unused.json" } },
      tokenizer,
      template: "chatml",
      data: [{ path: corpus }],
      seq_len: 1024,
      seed: 0,
    },
    "bench",
    root,
  );
  const t0 = process.hrtime.bigint();
  const d = buildDataset(spec, { quiet: true, useCache: false });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const s = d.stats;
  console.log(
    JSON.stringify({
      seconds,
      tokens: s.train.tokens,
      records: s.recordsRead,
      rows: s.train.rows,
      efficiency: s.train.efficiency,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

function main(argv: string[]): void {
  const i = argv.indexOf("--run");
  if (i >= 0) return runOne(argv[i + 1], argv[i + 2]);
  const n = argv.includes("--records") ? Number(argv[argv.indexOf("--records") + 1]) : 100_000;
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-bench-"));
  const corpus = generateCorpus(dir, n);
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`machine: ${cpu}, ${os.cpus().length} cores, node ${process.version}`);
  console.log(
    `corpus: ${n} records (alpaca, sharegpt multi-turn, OpenAI tool calls, text), template chatml, seq_len 1024, packing`,
  );
  const results: Record<
    string,
    { seconds: number; tokens: number; maxRssMiB: number; efficiency: number; rows: number }
  > = {};
  for (const [name, tok] of [
    ["byte", "byte"],
    ["bpe", path.join(root, "test/fixtures/data/bpe-qwen")],
  ] as const) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--run", tok, corpus], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`${name} run failed:\n${r.stderr}`);
    results[name] = JSON.parse(r.stdout.trim().split("\n").pop()!);
    const x = results[name];
    console.log(
      `${name.padEnd(5)} ${(x.tokens / x.seconds / 1e6).toFixed(2)} M tokens/s  (${x.tokens} tokens in ${x.seconds.toFixed(2)} s, ${(n / x.seconds).toFixed(0)} records/s), ` +
        `${x.rows} rows, packing efficiency ${(100 * x.efficiency).toFixed(1)}%, peak RSS ${x.maxRssMiB.toFixed(0)} MiB`,
    );
  }
  const ratio = results.bpe.tokens / results.bpe.seconds / (results.byte.tokens / results.byte.seconds);
  console.log(`bpe/byte tokens/s ratio: ${ratio.toFixed(2)}`);
  rmSync(dir, { recursive: true, force: true });
}

main(process.argv.slice(2));
