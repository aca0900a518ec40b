// A preference job's pairs streamed into the token cache: records are read a chunk at a time, each pair is
// normalized, keyed for exact repeats and tokenized as it comes, and its two sequences go straight to the
// tokens file. What stays in memory is a few numbers per pair in flat typed arrays (task, source, line,
// where its tokens lie, its lengths and targets: 40 bytes a pair) and one partition of the repeat keys at a
// time, never a pair's text, tokens or rows. The split, the mix and the packing then run over those numbers,
// window by window, and the rows go to the cache as they are packed. The rows, statistics and problems are
// those of the in-memory pipeline (test/helpers/in_memory_pairs.ts) for the same spec and seed.
import { createHash } from "node:crypto";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import type { PrepareProgress } from "../first_pass.js";
import { DuplicatePartitions } from "../dedupe/duplicate_partitions.js";
import { keyWords } from "../dedupe/duplicate_keys.js";
import { MixPlan } from "../sampling/mix.js";
import { SplitSampler } from "../sampling/split.js";
import { packWindow, PACK_WINDOW, windowRng } from "../rows/pack.js";
import { RowsWriter, TokenWriter } from "../rows/token_cache.js";
import { recordCounts, sortProblems, type DataStats, type SplitStats, type TaskStats } from "../stats.js";
import { subSeed } from "../../spec/rng.js";
import type { TextSetup } from "../../spec/text_setup.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import { readDataFile, type RawRecord } from "../../text/readers/read.js";
import { streamRecords } from "../../text/readers/stream_records.js";
import { DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RECORD_TOKENS } from "../../text/records/record_limits.js";
import type { Example } from "../examples/example.js";
import { pairOfRaw } from "./pair_records.js";
import { tokenizePair } from "./pair_examples.js";
import type { PairSpec, PairStats } from "./pair_spec.js";

/** How often reading says how far it got, in records. */
const PROGRESS_RECORDS = 1000;

/** A column of int32 numbers that grows by doubling. */
class Column {
  data = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Int32Array(2 * this.data.length);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }
  at(i: number): number {
    return this.data[i]!;
  }
}

/** Per valid pair (by its ordinal among them): what the split, the mix, the packing and the stats need. */
class PairNumbers {
  readonly task = new Column();
  readonly source = new Column();
  readonly line = new Column();
  /** the chosen sequence's example index in the tokens file (the rejected one's is the next); -1: not tokenized */
  readonly example = new Column();
  readonly chosenLength = new Column();
  readonly rejectedLength = new Column();
  readonly promptLength = new Column();
  readonly chosenTargets = new Column();
  readonly rejectedTargets = new Column();
  get length(): number {
    return this.task.length;
  }
  length2(i: number): number {
    return this.chosenLength.at(i) + this.rejectedLength.at(i);
  }
}

function countTargets(labels: Int32Array): number {
  let n = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) n++;
  return n;
}

/** JSONL and JSON arrays are read a chunk at a time; .txt and .parquet files whole, as the SFT pipeline does. */
function recordsOf(file: string, textSplit: PairSpec["data"][number]["text_split"], maxBytes: number) {
  const lower = file.toLowerCase();
  return lower.endsWith(".txt") || lower.endsWith(".parquet")
    ? readDataFile(file, textSplit, maxBytes)
    : (streamRecords(file, undefined, maxBytes) as Iterable<RawRecord>);
}

/** Builds the cache entry's files in `dir` (the rows, the tokens, the metadata) from the spec's pair files. */
export function streamPairsToCache(
  dir: string,
  spec: PairSpec,
  setup: TextSetup,
  display: (f: string) => string,
  onProgress?: (p: PrepareProgress) => void,
): void {
  const began = Date.now();
  const counts: PrepareProgress = { records: 0, tokens: 0, targets: 0, seconds: 0 };
  const report = () => onProgress?.({ ...counts, seconds: (Date.now() - began) / 1000 });
  const problems: Problem[] = [];
  const tokenProblems = new Map<number, Problem>();
  const taskNames: string[] = [];
  const taskIds = new Map<string, number>();
  const taskId = (t: string) => {
    let k = taskIds.get(t);
    if (k === undefined) taskIds.set(t, (k = taskNames.push(t) - 1));
    return k;
  };
  const pairs = new PairNumbers();
  const tokens = new TokenWriter(dir);
  const rows = new RowsWriter(dir);
  const keys = spec.dedup === "none" ? null : new DuplicatePartitions(dir);
  let tokensOpen = true;
  const settings = { seqLen: spec.seq_len, maxRecordTokens: spec.max_record_tokens ?? DEFAULT_MAX_RECORD_TOKENS };
  try {
    // Pass 1: read, normalize, key and tokenize each pair; its tokens to the tokens file.
    const sources = spec.data.map((src, sourceIndex) => {
      const file = display(src.path);
      let read = 0;
      let valid = 0;
      for (const raw of recordsOf(src.path, src.text_split, spec.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES)) {
        read++;
        if (read % PROGRESS_RECORDS === 0) report();
        const got = pairOfRaw(raw, src, file, sourceIndex);
        if ("problem" in got) {
          problems.push(got.problem);
          continue;
        }
        const pair = got.pair;
        const ordinal = pairs.length;
        valid++;
        if (keys) {
          const key = JSON.stringify([pair.chosen.messages, pair.rejected.messages, pair.chosen.tools ?? null]);
          const [hi, lo] = keyWords(createHash("sha1").update(key).digest());
          keys.add(hi, lo, ordinal, false);
        }
        pairs.task.push(taskId(pair.taskType));
        pairs.source.push(sourceIndex);
        pairs.line.push(raw.line);
        const t = tokenizePair(pair, setup.tokenizer, setup.template, settings);
        if ("problem" in t) {
          tokenProblems.set(ordinal, t.problem);
          for (const c of [pairs.example, pairs.chosenLength, pairs.rejectedLength, pairs.promptLength])
            c.push(c === pairs.example ? -1 : 0);
          pairs.chosenTargets.push(0);
          pairs.rejectedTargets.push(0);
          continue;
        }
        const { chosen, rejected, promptLength } = t.example;
        pairs.example.push(tokens.examples);
        for (const e of [chosen, rejected]) appendExample(tokens, e);
        pairs.chosenLength.push(chosen.inputIds.length);
        pairs.rejectedLength.push(rejected.inputIds.length);
        pairs.promptLength.push(promptLength);
        pairs.chosenTargets.push(countTargets(chosen.labels));
        pairs.rejectedTargets.push(countTargets(rejected.labels));
        counts.tokens += chosen.inputIds.length + rejected.inputIds.length;
        counts.targets += pairs.chosenTargets.at(ordinal) + pairs.rejectedTargets.at(ordinal);
      }
      counts.records += read;
      report();
      return { file, read, valid, mixed: 0 };
    });
    tokensOpen = false;
    tokens.close();

    // Exact repeats: the first of each stays; a repeat is a problem, and its tokens are never used.
    const repeated = new Uint8Array(pairs.length);
    if (keys) {
      const d = keys.resolve();
      d.ordinals.forEach((o, k) => {
        repeated[o] = 1;
        const first = d.firsts[k]!;
        problems.push(
          problemAt(
            { file: sources[pairs.source.at(o)]!.file, line: pairs.line.at(o) },
            "duplicate",
            `exact duplicate of ${sources[pairs.source.at(first)]!.file}:${pairs.line.at(first)}`,
          ),
        );
      });
    }
    for (const [o, p] of tokenProblems) if (!repeated[o]) problems.push(p);

    // The validation split over the kept pairs (tokenized or not, as the in-memory pipeline splits them).
    const sizes = new Map<string, number>();
    for (let o = 0; o < pairs.length; o++)
      if (!repeated[o]) sizes.set(taskNames[pairs.task.at(o)]!, (sizes.get(taskNames[pairs.task.at(o)]!) ?? 0) + 1);
    const sampler = new SplitSampler(sizes, spec.val_size, subSeed(spec.seed, "val"));
    const trainBySource = spec.data.map(() => new Column());
    const val = new Column();
    for (let o = 0; o < pairs.length; o++) {
      if (repeated[o]) continue;
      const isVal = sampler.isVal(taskNames[pairs.task.at(o)]!);
      if (pairs.example.at(o) < 0) continue;
      if (isVal) val.push(o);
      else trainBySource[pairs.source.at(o)]!.push(o);
    }

    // The mix, read by position.
    const plan = new MixPlan(
      trainBySource.map((c) => c.length),
      spec.data.map((d) => d.weight),
      spec.data.map((d) => d.epochs),
      spec.seed,
    );
    const mixedAt = (j: number) => {
      const { source, item } = plan.at(j);
      sources[source]!.mixed++;
      return trainBySource[source]!.at(item);
    };

    // Packing, one window of pairs at a time, each row written as it is made.
    const cacheTasks = new Map<number, number>();
    const cacheTask = (t: number) => {
      let k = cacheTasks.get(t);
      if (k === undefined) cacheTasks.set(t, (k = cacheTasks.size));
      return k;
    };
    const writeSplit = (n: number, ordinalAt: (i: number) => number, label: string, out: RowsWriter["train"]) => {
      const st = { pairs: 0, rows: 0, rowTokens: 0 };
      for (let w = 0; w * PACK_WINDOW < n; w++) {
        const window = Int32Array.from({ length: Math.min(PACK_WINDOW, n - w * PACK_WINDOW) }, (_, i) =>
          ordinalAt(w * PACK_WINDOW + i),
        );
        const lengths = Int32Array.from(window, (o) => pairs.length2(o));
        const packed = spec.packing
          ? packWindow(lengths, spec.seq_len, windowRng(spec.seed, `pairs:${label}`, w))
          : { starts: Int32Array.from({ length: window.length + 1 }, (_, i) => i), members: window.map((_, i) => i) };
        for (let r = 0; r + 1 < packed.starts.length; r++) {
          const members: number[] = [];
          const tasks: number[] = [];
          let width = 0;
          for (let k = packed.starts[r]!; k < packed.starts[r + 1]!; k++) {
            const o = window[packed.members[k]!]!;
            const task = cacheTask(pairs.task.at(o));
            members.push(pairs.example.at(o), pairs.example.at(o) + 1);
            tasks.push(task, task);
            width += pairs.length2(o);
          }
          out.add(members, tasks, 0, members.length);
          st.rows++;
          st.rowTokens += spec.packing ? spec.seq_len : width;
        }
        st.pairs += window.length;
      }
      return st;
    };
    const mixedOrdinals = new Column();
    const trainRows = writeSplit(
      plan.length,
      (j) => {
        const o = mixedAt(j);
        mixedOrdinals.push(o);
        return o;
      },
      "train",
      rows.train,
    );
    const valRows = writeSplit(val.length, (i) => val.at(i), "val", rows.val);

    sortProblems(problems);
    const stats = pairStats(pairs, taskNames, mixedOrdinals, val, trainRows, valRows);
    const data: DataStats & { pairs: PairStats } = {
      sources,
      ...recordCounts(problems, sources),
      nearDuplicates: 0,
      truncated: 0,
      split: 0,
      ...stats,
    };
    rows.finish(
      {
        stats: data,
        problems,
        taskTypes: [...cacheTasks.keys()].map((t) => taskNames[t]!),
        padId: setup.tokenizer.padId,
      },
      spec.packing ? spec.seq_len : 0,
    );
  } catch (err) {
    if (tokensOpen) tokens.close();
    rows.close();
    keys?.close();
    throw err;
  }
}

function appendExample(tokens: TokenWriter, e: Example): void {
  const both = new Int32Array(2 * e.inputIds.length);
  both.set(e.inputIds);
  both.set(e.labels, e.inputIds.length);
  tokens.append(Int32Array.of(e.inputIds.length), both);
}

/** The statistics of the in-memory pipeline, from the numbers: per task, per split, and of the pairs. */
function pairStats(
  pairs: PairNumbers,
  taskNames: string[],
  mixed: Column,
  val: Column,
  trainRows: { rows: number; rowTokens: number },
  valRows: { rows: number; rowTokens: number },
): Pick<DataStats, "perTask" | "train" | "val"> & { pairs: PairStats } {
  const perTask: Record<string, TaskStats> = {};
  const pairsPerTask: Record<string, number> = {};
  const split = (list: Column, r: { rows: number; rowTokens: number }, tasks: boolean): SplitStats => {
    let tokens = 0;
    let targets = 0;
    for (let i = 0; i < list.length; i++) {
      const o = list.at(i);
      const t = pairs.chosenTargets.at(o) + pairs.rejectedTargets.at(o);
      tokens += pairs.length2(o);
      targets += t;
      if (!tasks) continue;
      const name = taskNames[pairs.task.at(o)]!;
      const s = (perTask[name] ??= { examples: 0, tokens: 0, targets: 0 });
      s.examples += 2;
      s.tokens += pairs.length2(o);
      s.targets += t;
      pairsPerTask[name] = (pairsPerTask[name] ?? 0) + 1;
    }
    return {
      examples: 2 * list.length,
      rows: r.rows,
      tokens,
      targets,
      rowTokens: r.rowTokens,
      efficiency: r.rowTokens ? tokens / r.rowTokens : 0,
    };
  };
  const mean = (c: Column) => {
    let sum = 0;
    for (let i = 0; i < mixed.length; i++) sum += c.at(mixed.at(i));
    return mixed.length ? sum / mixed.length : 0;
  };
  const train = split(mixed, trainRows, true);
  return {
    perTask,
    train,
    val: split(val, valRows, false),
    pairs: {
      train: mixed.length,
      val: val.length,
      perTask: pairsPerTask,
      meanChosenLength: mean(pairs.chosenLength),
      meanRejectedLength: mean(pairs.rejectedLength),
      meanPromptLength: mean(pairs.promptLength),
    },
  };
}
