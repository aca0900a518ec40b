// The in-memory pipeline's steps, each over a whole array held at once: the reference the streamed pipeline
// (which takes one record, one batch or one window at a time) is compared with. The per-record pieces they
// share (normalising and checking a record, templating and fitting it, the MinHash signature, building a row)
// are the product's own.
import path from "node:path";
import type { DataSource } from "../../spec/job_spec.js";
import {
  estimatedJaccard,
  MINHASH_BANDS,
  MINHASH_ROWS,
  minhash,
  recordDigest,
  responseText,
} from "../../data/dedupe/dedupe.js";
import type { Example } from "../../data/examples/example.js";
import { loadRecord } from "../../data/examples/load_records.js";
import { tokenizeRecord, type TokenizeOutcome, type TokenizeSettings } from "../../data/examples/tokenize_records.js";
import type { Progress } from "../../data/progress.js";
import { buildRow, packWindow, PACK_WINDOW, windowRng } from "../../data/rows/pack.js";
import type { Row } from "../../data/rows/row.js";
import { readDataFile } from "../../text/readers/read.js";
import type { Problem } from "../../text/records/problems.js";
import { ROBUSTNESS_TAG, type DataRecord, type Source } from "../../text/records/records.js";
import type { ChatTemplate } from "../../text/templates/template.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";

export interface LoadedSource {
  records: DataRecord[];
  problems: Problem[];
  read: number;
}

/** One data source read whole into valid records and problems (`file:line: reason`). */
export function loadSource(
  src: DataSource,
  sourceIndex: number,
  displayName: string,
  progress?: Progress,
  maxRecordBytes?: number,
): LoadedSource {
  const raws = readDataFile(src.path, src.text_split, maxRecordBytes);
  const records: DataRecord[] = [];
  const problems: Problem[] = [];
  raws.forEach((raw, i) => {
    progress?.update(`checking ${path.basename(src.path)}`, i + 1, raws.length);
    const r = loadRecord(raw, src, sourceIndex, displayName);
    if ("problem" in r) problems.push(r.problem);
    else records.push(r.record);
  });
  return { records, problems, read: raws.length };
}

export interface DuplicateReport {
  kept: DataRecord[];
  /** removed records and the record each repeats */
  removed: { record: DataRecord; firstSeen: Source }[];
}

/** Exact copies removed, the first seen kept; records tagged "robustness" are kept as they are, on purpose. */
export function removeExactDuplicates(records: DataRecord[]): DuplicateReport {
  const seen = new Map<string, Source>();
  const kept: DataRecord[] = [];
  const removed: DuplicateReport["removed"] = [];
  for (const r of records) {
    const key = recordDigest(r).toString("base64");
    const first = seen.get(key);
    if (first && !r.tags.includes(ROBUSTNESS_TAG)) removed.push({ record: r, firstSeen: first });
    else {
      if (!first) seen.set(key, r.source);
      kept.push(r);
    }
  }
  return { kept, removed };
}

export interface NearDuplicate {
  record: DataRecord;
  similarTo: Source;
  jaccard: number;
}

/** Each record whose response is close (estimated Jaccard >= threshold) to an earlier record's. */
export function findNearDuplicates(records: DataRecord[], threshold = 0.8): NearDuplicate[] {
  const buckets: Map<string, number>[] = Array.from({ length: MINHASH_BANDS }, () => new Map());
  const sigs: (Uint32Array | null)[] = [];
  const out: NearDuplicate[] = [];
  records.forEach((r, i) => {
    const sig = minhash(responseText(r));
    sigs.push(sig);
    if (!sig) return;
    let best: { j: number; jac: number } | null = null;
    for (let b = 0; b < MINHASH_BANDS; b++) {
      const key = Array.from(sig.subarray(b * MINHASH_ROWS, (b + 1) * MINHASH_ROWS)).join(",");
      const j = buckets[b].get(key);
      if (j !== undefined) {
        const jac = estimatedJaccard(sig, sigs[j]!);
        if (jac >= threshold && (!best || jac > best.jac)) best = { j, jac };
      } else buckets[b].set(key, i);
    }
    if (best && !r.tags.includes(ROBUSTNESS_TAG))
      out.push({ record: r, similarTo: records[best.j].source, jaccard: best.jac });
  });
  return out;
}

/** Every record templated, tokenized, masked and fitted to seq_len. */
export function tokenizeRecords(
  records: DataRecord[],
  tok: TextTokenizer,
  template: ChatTemplate,
  s: TokenizeSettings,
  stage: string,
  progress?: Progress,
): TokenizeOutcome {
  const out: TokenizeOutcome = { examples: [], problems: [], truncated: 0, split: 0 };
  records.forEach((r, i) => {
    progress?.update(stage, i + 1, records.length);
    tokenizeRecord(r, tok, template, s, out);
  });
  return out;
}

/** Packed rows of examples in the order given, window by window, each window's rows shuffled. */
export function packRows(examples: Example[], seqLen: number, padId: number, seed: number, label: string): Row[] {
  const rows: Row[] = [];
  for (let w = 0; w * PACK_WINDOW < examples.length; w++) {
    const window = examples.slice(w * PACK_WINDOW, (w + 1) * PACK_WINDOW);
    const { starts, members } = packWindow(
      window.map((e) => e.inputIds.length),
      seqLen,
      windowRng(seed, label, w),
    );
    for (let r = 0; r + 1 < starts.length; r++)
      rows.push(
        buildRow(
          Array.from(members.subarray(starts[r], starts[r + 1]), (i) => window[i]),
          seqLen,
          padId,
        ),
      );
  }
  return rows;
}

/** Padded mode: one example per row at its own length; rowsToBatch pads a batch to its longest. */
export function unpackedRows(examples: Example[], padId: number): Row[] {
  return examples.map((e) => buildRow([e], e.inputIds.length, padId));
}
