// The data pipeline of a preference job (stage: dpo) in memory: read every source as pairs, drop exact
// repeats, split off validation pairs by task_type, template and tokenize both answers, mix by weight, pack
// pairs into rows. Jobs and `data check` build the token cache with the streamed form of the same steps
// (stream_pairs.ts: a few numbers per pair in memory, tokens and rows on disk), which must give these rows,
// statistics and problems; this form is the reference the tests compare it with and read rows from.
import path from "node:path";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import type { PrepareProgress } from "../first_pass.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { mixSources } from "../sampling/mix.js";
import { isBadRecord } from "../data_keys.js";
import { problemAt, type Problem } from "../../text/records/problems.js";
import { readDataFile } from "../../text/readers/read.js";
import { DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_RECORD_TOKENS } from "../../text/records/record_limits.js";
import { UNKNOWN_TASK } from "../../text/records/records.js";
import { subSeed } from "../../spec/rng.js";
import type { Row } from "../rows/row.js";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import { stratifiedSplit } from "../sampling/split.js";
import { recordCounts, sortProblems, splitStats, taskStats, type DataStats } from "../stats.js";
import { arrayRowTable, type RowTable } from "../rows/token_cache.js";
import { normalizePair, type PairRecord } from "./pair_records.js";
import { tokenizePair, type PairExample } from "./pair_examples.js";
import { pairGroups, pairRow, pairRowWidth } from "./pack_pairs.js";

/** How often tokenizing says how far it got, in pairs. */
const PROGRESS_PAIRS = 1000;

export type PairSpec = Pick<
  JobSpec,
  "model" | "tokenizer" | "template" | "data" | "val_size" | "seq_len" | "packing" | "on_bad_record" | "seed" | "dedup"
> &
  Partial<Pick<JobSpec, "template_options" | "max_record_bytes" | "max_record_tokens">>;

/** Pair counts of a split, per task_type too. */
export interface PairStats {
  train: number;
  val: number;
  perTask: Record<string, number>;
  /** mean positions of a chosen and of a rejected sequence (training pairs) */
  meanChosenLength: number;
  meanRejectedLength: number;
  meanPromptLength: number;
}

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
      const at = { file, line: raw.line };
      if (raw.error !== undefined) {
        problems.push(problemAt(at, "invalid", raw.error));
        continue;
      }
      const n = normalizePair(raw.value, src.format, at, src);
      if ("error" in n) {
        problems.push(problemAt(at, "invalid", n.error));
        continue;
      }
      const taskType = n.pair.taskType === UNKNOWN_TASK && src.task_type ? src.task_type : n.pair.taskType;
      pairs.push({ ...n.pair, taskType, sourceIndex });
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
