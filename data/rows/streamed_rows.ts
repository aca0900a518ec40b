// The streamed pipeline's second half: from what the first pass left on disk (per valid record and per
// example, in file order) to the rows of the token cache, in memory that does not grow with the dataset.
// Exact duplicates come from the key partitions (the first pass's near-duplicate reports of records that turn
// out to be exact duplicates are dropped); the validation split (one record at a time), the mix (a
// permutation read by position) and packing (one window at a time) each stream over the spilled numbers.
// Rows, statistics and problems equal the in-memory pipeline's.
import path from "node:path";
import type { Duplicates } from "../dedupe/duplicate_partitions.js";
import { MixPlan } from "../sampling/mix.js";
import { packWindow, PACK_WINDOW, windowRng } from "./pack.js";
import type { DataSpec } from "../data_keys.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import type { Progress } from "../progress.js";
import { SPLIT, TRUNCATED } from "../examples/record_batch.js";
import { subSeed } from "../../spec/rng.js";
import { int32Spill, type Spill } from "../storage/spill.js";
import { SplitSampler } from "../sampling/split.js";
import { recordCounts, sortProblems, type DataStats, type SplitStats, type TaskStats } from "../stats.js";
import { RowsWriter, type TokenWriter } from "./token_cache.js";

/** Fields of a valid record in the first pass's spill. */
export const VALID = { task: 0, source: 1, line: 2, firstExample: 3, examples: 4, flags: 5, width: 6 } as const;

/** A near-duplicate report, by the ordinal of its record among the valid ones. */
export interface NearProblem {
  ordinal: number;
  problem: Problem;
}

/** What the first pass leaves: valid records, each example's targets, the tokens, the near-duplicates. */
export interface FirstPassOutput {
  valid: Spill<Int32Array>;
  /** in ordinal order */
  nearProblems: NearProblem[];
  targets: Spill<Int32Array>;
  writer: TokenWriter;
  duplicates: Duplicates;
  /** a valid record's one problem (template, overlong), by its ordinal among valid records */
  recordProblems: Map<number, Problem>;
  readProblems: Problem[];
}

export interface RowsContext {
  spec: DataSpec;
  dir: string;
  files: string[];
  taskTypes: string[];
  sources: DataStats["sources"];
  padId: number;
  progress: Progress;
}

/** Fields of a kept record (not an exact duplicate): a valid record's, its ordinal among them in place of flags. */
const KEPT = { task: 0, source: 1, line: 2, firstExample: 3, examples: 4, ordinal: 5, width: 6 } as const;
/** An example as the split and the mix carry it. */
const ENTRY = { example: 0, length: 1, targets: 2, task: 3, width: 4 } as const;

type SpillOf = (name: string, width: number) => Spill<Int32Array>;

export function planStreamedRows(
  ctx: RowsContext,
  first: FirstPassOutput,
): { stats: DataStats; problems: Problem[]; tokens: number; targets: number } {
  const { spec, dir, sources, progress } = ctx;
  let t0 = Date.now();
  const took = () => {
    const s = `${((Date.now() - t0) / 1000).toFixed(1)}s`;
    t0 = Date.now();
    return s;
  };
  const open: { close(): void }[] = [];
  const spill: SpillOf = (name, width) => {
    const s = int32Spill(path.join(dir, name), width);
    open.push(s);
    return s;
  };
  try {
    const kept = keepRecords(ctx, first, spill);
    progress.note(
      `data: ${kept.dupProblems.length} exact duplicates dropped, ${kept.nearProblems.length} near-duplicates (${took()})`,
    );
    const split = splitRecords(ctx, first, kept, spill);
    progress.note(`data: split ${kept.records.length} records (${took()})`);
    const rows = new RowsWriter(dir);
    open.push(rows);
    const train = packTrainRows(ctx, split.trainBySource, rows);
    const val = packValRows(ctx, split.valEntries, rows);
    progress.note(`data: mixed and packed ${train.mixed + split.valEntries.length} examples (${took()})`);

    const problems = [
      ...first.readProblems,
      ...kept.dupProblems,
      ...kept.nearProblems,
      ...split.trainProblems,
      ...split.valProblems,
    ];
    sortProblems(problems);
    const width = spec.packing ? spec.seq_len : 0;
    const stats: DataStats = {
      sources,
      ...recordCounts(problems, sources),
      nearDuplicates: kept.nearProblems.length,
      truncated: kept.truncated,
      split: kept.split,
      perTask: train.perTask,
      train: train.totals.stats(rows.train.rows, width),
      val: val.stats(rows.val.rows, width),
    };
    rows.finish({ stats, problems, taskTypes: ctx.taskTypes, padId: ctx.padId }, width);
    return { stats, problems, tokens: split.tokens, targets: split.targets };
  } finally {
    for (const s of open) s.close();
  }
}

interface KeptRecords {
  /** the valid records that are not exact duplicates (KEPT fields), in file order */
  records: Spill<Int32Array>;
  dupProblems: Problem[];
  nearProblems: Problem[];
  /** kept records per task_type: what the stratified split samples from */
  taskSizes: Map<string, number>;
  truncated: number;
  split: number;
}

/** Which valid records are kept (not exact duplicates), their near-duplicate reports, per-task sizes. */
function keepRecords(ctx: RowsContext, first: FirstPassOutput, spill: SpillOf): KeptRecords {
  const { files, taskTypes, progress } = ctx;
  const out: KeptRecords = {
    records: spill("kept.tmp", KEPT.width),
    dupProblems: [],
    nearProblems: [],
    taskSizes: new Map(),
    truncated: 0,
    split: 0,
  };
  const { ordinals, firsts } = first.duplicates;
  const records = first.valid.reader();
  let d = 0;
  let n = 0; // the next near-duplicate report
  for (let v = 0; v < records.length; v++) {
    const nearHere = n < first.nearProblems.length && first.nearProblems[n].ordinal === v;
    if (nearHere) n++;
    const at = records.at(v);
    const rec = records.view.subarray(at, at + VALID.width);
    const file = files[rec[VALID.source]];
    const line = rec[VALID.line];
    if (d < ordinals.length && ordinals[d] === v) {
      const original = first.valid.read(firsts[d++]);
      const seen = `${files[original[VALID.source]]}:${original[VALID.line]}`;
      out.dupProblems.push(problemAt({ file, line }, "duplicate", `exact duplicate of ${seen}`));
      continue;
    }
    if (nearHere) out.nearProblems.push(first.nearProblems[n - 1].problem);
    const flags = rec[VALID.flags];
    const task = taskTypes[rec[VALID.task]];
    out.taskSizes.set(task, (out.taskSizes.get(task) ?? 0) + 1);
    if (flags & TRUNCATED) out.truncated++;
    if (flags & SPLIT) out.split++;
    const slot = out.records.slot();
    out.records.buffer.set(rec.subarray(0, VALID.flags), slot);
    out.records.buffer[slot + KEPT.ordinal] = v;
    if ((v & 0xffff) === 0) progress.update("data: duplicates", v, records.length);
  }
  return out;
}

interface SplitExamples {
  /** each source's training examples (ENTRY fields), in file order */
  trainBySource: Spill<Int32Array>[];
  valEntries: Spill<Int32Array>;
  trainProblems: Problem[];
  valProblems: Problem[];
  tokens: number;
  targets: number;
}

/** The validation split, record by record; each side's examples with their lengths and targets. */
function splitRecords(ctx: RowsContext, first: FirstPassOutput, kept: KeptRecords, spill: SpillOf): SplitExamples {
  const { spec, taskTypes } = ctx;
  const out: SplitExamples = {
    trainBySource: spec.data.map((_, i) => spill(`train-${i}.tmp`, ENTRY.width)),
    valEntries: spill("val.tmp", ENTRY.width),
    trainProblems: [],
    valProblems: [],
    tokens: 0,
    targets: 0,
  };
  const sampler = new SplitSampler(kept.taskSizes, spec.val_size, subSeed(spec.seed, "val"));
  const records = kept.records.reader();
  const index = first.writer.reader();
  const counts = first.targets.reader();
  for (let k = 0; k < records.length; k++) {
    const at = records.at(k);
    const r = records.view;
    const task = r[at + KEPT.task];
    const firstExample = r[at + KEPT.firstExample];
    const v = r[at + KEPT.ordinal];
    const isVal = sampler.isVal(taskTypes[task]);
    const problem = first.recordProblems.get(v);
    if (problem) (isVal ? out.valProblems : out.trainProblems).push(problem);
    const side = isVal ? out.valEntries : out.trainBySource[r[at + KEPT.source]];
    for (let e = firstExample; e < firstExample + r[at + KEPT.examples]; e++) {
      const length = index.view[index.at(e) + 1];
      const t = counts.view[counts.at(e)];
      const slot = side.slot();
      side.buffer[slot + ENTRY.example] = e;
      side.buffer[slot + ENTRY.length] = length;
      side.buffer[slot + ENTRY.targets] = t;
      side.buffer[slot + ENTRY.task] = task;
      out.tokens += length;
      out.targets += t;
    }
  }
  return out;
}

/** The training mix, read by position, packed window by window into rows; per-task sums on the way. */
function packTrainRows(
  ctx: RowsContext,
  trainBySource: Spill<Int32Array>[],
  rows: RowsWriter,
): { mixed: number; perTask: Record<string, TaskStats>; totals: ReturnType<typeof splitTotals> } {
  const { spec, sources, taskTypes, progress } = ctx;
  const mix = new MixPlan(
    trainBySource.map((s) => s.length),
    spec.data.map((d) => d.weight),
    spec.data.map((d) => d.epochs),
    spec.seed,
  );
  mix.counts.forEach((c, i) => (sources[i].mixed = c));
  const perTask: Record<string, TaskStats> = {};
  const window = new Int32Array(PACK_WINDOW * ENTRY.width);
  const totals = splitTotals(mix.length);
  let filled = 0;
  let w = 0;
  for (let j = 0; j < mix.length; j++) {
    const { source, item } = mix.at(j);
    const entry = trainBySource[source].read(item);
    window.set(entry, filled++ * ENTRY.width);
    const t = (perTask[taskTypes[entry[ENTRY.task]]] ??= { examples: 0, tokens: 0, targets: 0 });
    t.examples++;
    t.tokens += entry[ENTRY.length];
    t.targets += entry[ENTRY.targets];
    if (filled === PACK_WINDOW || j === mix.length - 1) {
      addRows(rows.train, window, filled, totals, spec, windowRng(spec.seed, "train", w++));
      filled = 0;
      progress.update("data: packing train rows", j + 1, mix.length);
    }
  }
  return { mixed: mix.length, perTask, totals };
}

/** The validation examples in file order, packed window by window into rows. */
function packValRows(
  ctx: RowsContext,
  valEntries: Spill<Int32Array>,
  rows: RowsWriter,
): ReturnType<typeof splitTotals> {
  const { spec } = ctx;
  const totals = splitTotals(valEntries.length);
  const window = new Int32Array(PACK_WINDOW * ENTRY.width);
  const entries = valEntries.reader();
  let w = 0;
  for (let start = 0; start < entries.length; start += PACK_WINDOW) {
    const n = Math.min(PACK_WINDOW, entries.length - start);
    for (let i = 0; i < n; i++) {
      const at = entries.at(start + i);
      window.set(entries.view.subarray(at, at + ENTRY.width), i * ENTRY.width);
    }
    addRows(rows.val, window, n, totals, spec, windowRng(spec.seed, "val", w++));
  }
  return totals;
}

/** Running sums of a split's examples, tokens and targets. */
function splitTotals(examples: number) {
  let tokens = 0;
  let targets = 0;
  return {
    add(length: number, t: number) {
      tokens += length;
      targets += t;
    },
    stats(rows: number, width: number): SplitStats {
      const rowTokens = width ? rows * width : tokens;
      return { examples, rows, tokens, targets, rowTokens, efficiency: rowTokens ? tokens / rowTokens : 0 };
    },
  };
}

/** One window of entries as rows: packed (first-fit decreasing, rows shuffled) or one example per row. */
function addRows(
  out: RowsWriter["train"],
  window: Int32Array,
  n: number,
  totals: ReturnType<typeof splitTotals>,
  spec: DataSpec,
  rng: () => number,
): void {
  const field = (i: number, f: number) => window[i * ENTRY.width + f];
  for (let i = 0; i < n; i++) totals.add(field(i, ENTRY.length), field(i, ENTRY.targets));
  if (!spec.packing) {
    for (let i = 0; i < n; i++) out.add([field(i, ENTRY.example)], [field(i, ENTRY.task)], 0, 1);
    return;
  }
  const lengths = Int32Array.from({ length: n }, (_, i) => field(i, ENTRY.length));
  const { starts, members } = packWindow(lengths, spec.seq_len, rng);
  const examples = members.map((i) => field(i, ENTRY.example));
  const tasks = members.map((i) => field(i, ENTRY.task));
  for (let r = 0; r + 1 < starts.length; r++) out.add(examples, tasks, starts[r], starts[r + 1]);
}
