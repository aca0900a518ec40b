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
import type { DataSpec } from "../data_spec.js";
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
export interface FirstPass {
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

export function planStreamedRows(
  ctx: RowsContext,
  first: FirstPass,
): { stats: DataStats; problems: Problem[]; tokens: number; targets: number } {
  const { spec, dir, files, taskTypes, sources, progress } = ctx;
  let t0 = Date.now();
  const took = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  const open: { close(): void }[] = [];
  const spill = (name: string, width: number) => {
    const s = int32Spill(path.join(dir, name), width);
    open.push(s);
    return s;
  };
  try {
    // Which valid records are kept (not exact duplicates), their near-duplicate reports, per-task sizes.
    const kept = spill("kept.tmp", KEPT.width);
    const dupProblems: Problem[] = [];
    const nearProblems: Problem[] = [];
    const taskSizes = new Map<string, number>();
    let truncated = 0;
    let split = 0;
    {
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
          dupProblems.push(problemAt({ file, line }, "duplicate", `exact duplicate of ${seen}`));
          continue;
        }
        if (nearHere) nearProblems.push(first.nearProblems[n - 1].problem);
        const flags = rec[VALID.flags];
        const task = taskTypes[rec[VALID.task]];
        taskSizes.set(task, (taskSizes.get(task) ?? 0) + 1);
        if (flags & TRUNCATED) truncated++;
        if (flags & SPLIT) split++;
        const slot = kept.slot();
        kept.buffer.set(rec.subarray(0, VALID.flags), slot);
        kept.buffer[slot + KEPT.ordinal] = v;
        if ((v & 0xffff) === 0) progress.update("data: duplicates", v, records.length);
      }
    }
    progress.note(
      `data: ${dupProblems.length} exact duplicates dropped, ${nearProblems.length} near-duplicates (${took()})`,
    );
    t0 = Date.now();

    // The validation split, record by record; each side's examples with their lengths and targets.
    const trainBySource = spec.data.map((_, i) => spill(`train-${i}.tmp`, ENTRY.width));
    const valEntries = spill("val.tmp", ENTRY.width);
    const trainProblems: Problem[] = [];
    const valProblems: Problem[] = [];
    let tokens = 0;
    let targets = 0;
    {
      const sampler = new SplitSampler(taskSizes, spec.val_size, subSeed(spec.seed, "val"));
      const records = kept.reader();
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
        if (problem) (isVal ? valProblems : trainProblems).push(problem);
        const out = isVal ? valEntries : trainBySource[r[at + KEPT.source]];
        for (let e = firstExample; e < firstExample + r[at + KEPT.examples]; e++) {
          const length = index.view[index.at(e) + 1];
          const t = counts.view[counts.at(e)];
          const slot = out.slot();
          out.buffer[slot + ENTRY.example] = e;
          out.buffer[slot + ENTRY.length] = length;
          out.buffer[slot + ENTRY.targets] = t;
          out.buffer[slot + ENTRY.task] = task;
          tokens += length;
          targets += t;
        }
      }
    }

    progress.note(`data: split ${kept.length} records (${took()})`);
    t0 = Date.now();
    // The mix, read by position, packed window by window into rows.
    const rows = new RowsWriter(dir);
    open.push(rows);
    const width = spec.packing ? spec.seq_len : 0;
    const mix = new MixPlan(
      trainBySource.map((s) => s.length),
      spec.data.map((d) => d.weight),
      spec.data.map((d) => d.epochs),
      spec.seed,
    );
    mix.counts.forEach((c, i) => (sources[i].mixed = c));
    const perTask: Record<string, TaskStats> = {};
    const window = new Int32Array(PACK_WINDOW * ENTRY.width);
    const train = splitTotals(mix.length);
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
        addRows(rows.train, window, filled, train, spec, windowRng(spec.seed, "train", w++));
        filled = 0;
        progress.update("data: packing train rows", j + 1, mix.length);
      }
    }
    const val = splitTotals(valEntries.length);
    {
      const entries = valEntries.reader();
      w = 0;
      for (let start = 0; start < entries.length; start += PACK_WINDOW) {
        const n = Math.min(PACK_WINDOW, entries.length - start);
        for (let i = 0; i < n; i++) {
          const at = entries.at(start + i);
          window.set(entries.view.subarray(at, at + ENTRY.width), i * ENTRY.width);
        }
        addRows(rows.val, window, n, val, spec, windowRng(spec.seed, "val", w++));
      }
    }

    progress.note(`data: mixed and packed ${mix.length + valEntries.length} examples (${took()})`);
    const problems = [...first.readProblems, ...dupProblems, ...nearProblems, ...trainProblems, ...valProblems];
    sortProblems(problems);
    const stats: DataStats = {
      sources,
      ...recordCounts(problems, sources),
      nearDuplicates: nearProblems.length,
      truncated,
      split,
      perTask,
      train: train.stats(rows.train.rows, width),
      val: val.stats(rows.val.rows, width),
    };
    rows.finish({ stats, problems, taskTypes, padId: ctx.padId }, width);
    return { stats, problems, tokens, targets };
  } finally {
    for (const s of open) s.close();
  }
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
