// The data pipeline of a preference job (stage: dpo) in memory: read every source as pairs, drop exact
// repeats, split off validation pairs by task_type, template and tokenize both answers, mix by weight, pack
// pairs into rows. Jobs and `data check` build the token cache with the streamed form of the same steps
// (data/preference/stream_pairs.ts: a few numbers per pair in memory, tokens and rows on disk), which must give these rows,
// statistics and problems; this form is the reference the tests compare it with and read rows from.
import path from "node:path";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import type { PrepareProgress } from "../../data/first_pass.js";
import { mixSources } from "../../data/sampling/mix.js";
import { isBadRecord } from "../../data/data_keys.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import { readDataFile } from "../../text/readers/read.js";
import { DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RECORD_TOKENS } from "../../text/records/record_limits.js";
import { subSeed } from "../../spec/rng.js";
import type { Row } from "../../data/rows/row.js";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import { stratifiedSplit } from "../../data/sampling/split.js";
import { recordCounts, sortProblems, splitStats, taskStats, type DataStats } from "../../data/stats.js";
import { arrayRowTable, type RowTable } from "../../data/rows/token_cache.js";
import { pairOfRaw, type PairRecord } from "../../data/preference/pair_records.js";
import { tokenizePair, type PairExample } from "../../data/preference/pair_examples.js";
import { buildRow, packWindow, PACK_WINDOW, windowRng } from "../../data/rows/pack.js";
import type { PairSpec, PairStats } from "../../data/preference/pair_spec.js";

/** How often tokenizing says how far it got, in pairs. */
const PROGRESS_PAIRS = 1000;

export interface PreparedPairs {
  train: RowTable;
  val: RowTable;
  /** the pairs of each row of either split (what the token cache stores) */
  groups: { train: PairExample[][]; val: PairExample[][] };
  stats: DataStats & { pairs: PairStats };
  problems: Problem[];
  setup: TextSetup;
  fromCache: boolean;
  failed: boolean;
  cacheDir: string;
  close(): void;
}

export function preparePairs(
  spec: PairSpec,
  opts: { displayRoot?: string; onProgress?: (p: PrepareProgress) => void } = {},
): PreparedPairs {
  const began = Date.now();
  const counts: PrepareProgress = { records: 0, tokens: 0, targets: 0, seconds: 0 };
  const report = () => opts.onProgress?.({ ...counts, seconds: (Date.now() - began) / 1000 });
  const setup = setupText(spec);
  const display = (f: string) => path.relative(opts.displayRoot ?? process.cwd(), f) || f;
  const problems: Problem[] = [];
  const pairs: PairRecord[] = [];
  const sources = spec.data.map((src, sourceIndex) => {
    const file = display(src.path);
    const raws = readDataFile(src.path, src.text_split, spec.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES);
    let valid = 0;
    for (const raw of raws) {
      const got = pairOfRaw(raw, src, file, sourceIndex);
      if ("problem" in got) {
        problems.push(got.problem);
        continue;
      }
      pairs.push(got.pair);
      valid++;
    }
    counts.records += raws.length;
    report();
    return { file, read: raws.length, valid, mixed: 0 };
  });

  const kept = spec.dedup === "none" ? pairs : dropRepeats(pairs, problems);
  const split = stratifiedSplit(kept, (p) => p.taskType, spec.val_size, subSeed(spec.seed, "val"));
  const settings = { seqLen: spec.seq_len, maxRecordTokens: spec.max_record_tokens ?? DEFAULT_MAX_RECORD_TOKENS };
  const tokenize = (list: PairRecord[]) => {
    const out: (PairExample & { sourceIndex: number })[] = [];
    for (const p of list) {
      const t = tokenizePair(p, setup.tokenizer, setup.template, settings);
      if ("problem" in t) problems.push(t.problem);
      else {
        out.push({ ...t.example, sourceIndex: p.sourceIndex });
        for (const e of [t.example.chosen, t.example.rejected]) {
          counts.tokens += e.inputIds.length;
          counts.targets += countTargetLabels(e.labels);
        }
        if (out.length % PROGRESS_PAIRS === 0) report();
      }
    }
    report();
    return out;
  };
  const trainPairs = tokenize(split.train);
  const valPairs = tokenize(split.val);
  const bySource = spec.data.map((): (PairExample & { sourceIndex: number })[] => []);
  for (const p of trainPairs) bySource[p.sourceIndex]!.push(p);
  const mixed = mixSources(
    spec.data.map((d, i) => ({ items: bySource[i]!, weight: d.weight, epochs: d.epochs })),
    spec.seed,
  );
  for (const p of mixed) sources[p.sourceIndex]!.mixed++;
  const padId = setup.tokenizer.padId;
  const groupsOf = (list: PairExample[], label: string) =>
    pairGroups(list, { packing: spec.packing, seqLen: spec.seq_len, seed: spec.seed, label });
  const trainGroups = groupsOf(mixed, "train");
  const valGroups = groupsOf(valPairs, "val");
  const toRows = (groups: PairExample[][]): Row[] =>
    groups.map((g) => pairRow(g, pairRowWidth(g, spec.packing, spec.seq_len), padId));
  const train = toRows(trainGroups);
  const val = toRows(valGroups);

  sortProblems(problems);
  const sequences = (list: PairExample[]) => list.flatMap((p) => [p.chosen, p.rejected]);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const perTask: Record<string, number> = {};
  for (const p of mixed) perTask[p.taskType] = (perTask[p.taskType] ?? 0) + 1;
  const stats = {
    sources,
    ...recordCounts(problems, sources),
    nearDuplicates: 0,
    truncated: 0,
    split: 0,
    perTask: taskStats(sequences(mixed)),
    train: splitStats(sequences(mixed), train),
    val: splitStats(sequences(valPairs), val),
    pairs: {
      train: mixed.length,
      val: valPairs.length,
      perTask,
      meanChosenLength: mean(mixed.map((p) => p.chosen.inputIds.length)),
      meanRejectedLength: mean(mixed.map((p) => p.rejected.inputIds.length)),
      meanPromptLength: mean(mixed.map((p) => p.promptLength)),
    },
  };
  return {
    train: arrayRowTable(train),
    val: arrayRowTable(val),
    groups: { train: trainGroups, val: valGroups },
    stats,
    problems,
    setup,
    fromCache: false,
    failed: spec.on_bad_record === "fail" && problems.some(isBadRecord),
    cacheDir: "",
    close: () => {},
  };
}

function countTargetLabels(labels: Int32Array): number {
  let n = 0;
  for (const l of labels) if (l !== IGNORE_INDEX) n++;
  return n;
}

/** Exact repeats of a pair (same prompt and answers) are dropped; the first is kept. */
function dropRepeats(pairs: PairRecord[], problems: Problem[]): PairRecord[] {
  const seen = new Map<string, PairRecord>();
  const kept: PairRecord[] = [];
  for (const p of pairs) {
    const key = JSON.stringify([p.chosen.messages, p.rejected.messages, p.chosen.tools ?? null]);
    const first = seen.get(key);
    if (first) {
      problems.push(problemAt(p.source, "duplicate", `exact duplicate of ${first.source.file}:${first.source.line}`));
      continue;
    }
    seen.set(key, p);
    kept.push(p);
  }
  return kept;
}

/** The pairs of each row, rows in training order: packed into seq_len (`packing`), else one pair a row. */
export function pairGroups(
  pairs: PairExample[],
  o: { packing: boolean; seqLen: number; seed: number; label: string },
): PairExample[][] {
  if (!o.packing) return pairs.map((p) => [p]);
  const groups: PairExample[][] = [];
  for (let w = 0; w * PACK_WINDOW < pairs.length; w++) {
    const window = pairs.slice(w * PACK_WINDOW, (w + 1) * PACK_WINDOW);
    const { starts, members } = packWindow(
      window.map((p) => pairLength(p)),
      o.seqLen,
      windowRng(o.seed, `pairs:${o.label}`, w),
    );
    for (let r = 0; r + 1 < starts.length; r++)
      groups.push(Array.from(members.subarray(starts[r], starts[r + 1]), (i) => window[i]!));
  }
  return groups;
}

/** A row's width: seq_len when packed, else as long as its one pair (a batch pads its rows to the longest). */
export function pairRowWidth(group: PairExample[], packing: boolean, seqLen: number): number {
  return packing ? seqLen : group.reduce((n, p) => n + pairLength(p), 0);
}

function pairLength(p: PairExample): number {
  return p.chosen.inputIds.length + p.rejected.inputIds.length;
}

/** A row's segments: each pair's chosen then rejected sequence. */
export function pairRow(pairs: PairExample[], width: number, padId: number): Row {
  return buildRow(
    pairs.flatMap((p) => [p.chosen, p.rejected]),
    width,
    padId,
  );
}
