// What a worker thread makes of a batch of raw records (parsed JSON values, or parse errors): each record
// normalised and checked, keyed for exact duplicates, templated, tokenized, masked and MinHashed, and all of
// it packed into typed arrays, so the main thread receives a few flat buffers per batch instead of one
// object per record. The main thread spills each valid record's key, and which records repeat another is
// decided once all keys are in; problems carry the lines the batch knows (relative to a range's start for
// ranges).
import type { DataSource } from "../../spec/job_spec.js";
import { minhash, recordDigest, responseText, SIGNATURE_WORDS } from "../dedupe/dedupe.js";
import { keyWords } from "../dedupe/duplicate_keys.js";
import { loadRecord } from "./load_records.js";
import type { Problem } from "../../text/records/problems.js";
import type { RawRecord } from "../../text/readers/read.js";
import { ROBUSTNESS_TAG, type DataRecord } from "../../text/records/records.js";
import type { TokenizeOutcome } from "./tokenize_records.js";

export const TRUNCATED = 1;
export const SPLIT = 2;
export const SIGNED = 4;

/** One batch's results, one entry per raw record unless said otherwise. */
export interface BatchResult {
  /** newlines in the byte range the batch was read from (0 for a batch of records read elsewhere) */
  lineCount: number;
  lines: Int32Array;
  /** 1: a valid record; 0: refused while reading (its problem is in `problems`) */
  valid: Uint8Array;
  /** 1: tagged robustness (kept even when it repeats another) */
  robust: Uint8Array;
  /** task type, as an index into taskNames */
  task: Int32Array;
  taskNames: string[];
  /** two words of the record's content digest per record (zeros when not deduplicating) */
  keys: Uint32Array;
  /** examples the record became (long text is split into several; 0 when refused) */
  examples: Int32Array;
  /** TRUNCATED | SPLIT | SIGNED (signatures holds its MinHash) */
  flags: Uint8Array;
  /** the one problem of each record that has one (invalid, template, overlong) */
  problems: { at: number; problem: Problem }[];
  /** length of each example, in order */
  lengths: Int32Array;
  /** each example's input ids then its labels, end to end */
  tokens: Int32Array;
  /** SIGNATURE_WORDS words per record */
  signatures: Uint32Array;
}

export interface BatchContext {
  src: DataSource;
  sourceIndex: number;
  /** the file's name in messages */
  display: string;
  dedup: boolean;
  nearDuplicates: boolean;
  tokenize: (r: DataRecord, out: TokenizeOutcome) => void;
}

export function processBatch(raws: RawRecord[], lineCount: number, ctx: BatchContext): BatchResult {
  const n = raws.length;
  const lines = new Int32Array(n);
  const valid = new Uint8Array(n);
  const robust = new Uint8Array(n);
  const task = new Int32Array(n);
  const keys = new Uint32Array(2 * n);
  const examples = new Int32Array(n);
  const flags = new Uint8Array(n);
  const signatures = new Uint32Array(n * SIGNATURE_WORDS);
  const taskNames: string[] = [];
  const taskIndex = new Map<string, number>();
  const problems: BatchResult["problems"] = [];
  const lengths: number[] = [];
  const parts: Int32Array[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const raw = raws[i];
    lines[i] = raw.line;
    const loaded = loadRecord(raw, ctx.src, ctx.sourceIndex, ctx.display);
    if ("problem" in loaded) {
      problems.push({ at: i, problem: loaded.problem });
      continue;
    }
    const r = loaded.record;
    valid[i] = 1;
    if (r.tags.includes(ROBUSTNESS_TAG)) robust[i] = 1;
    let t = taskIndex.get(r.taskType);
    if (t === undefined) taskIndex.set(r.taskType, (t = taskNames.push(r.taskType) - 1));
    task[i] = t;
    if (ctx.dedup) {
      const [hi, lo] = keyWords(recordDigest(r));
      keys[2 * i] = hi;
      keys[2 * i + 1] = lo;
    }
    const out: TokenizeOutcome = { examples: [], problems: [], truncated: 0, split: 0 };
    ctx.tokenize(r, out);
    if (out.problems.length) problems.push({ at: i, problem: out.problems[0] });
    const sig = ctx.nearDuplicates ? minhash(responseText(r)) : null;
    if (sig) signatures.set(sig, i * SIGNATURE_WORDS);
    flags[i] = (out.truncated ? TRUNCATED : 0) | (out.split ? SPLIT : 0) | (sig ? SIGNED : 0);
    examples[i] = out.examples.length;
    for (const e of out.examples) {
      lengths.push(e.inputIds.length);
      parts.push(e.inputIds, e.labels);
      total += 2 * e.inputIds.length;
    }
  }
  const tokens = new Int32Array(total);
  let off = 0;
  for (const p of parts) {
    tokens.set(p, off);
    off += p.length;
  }
  return {
    lineCount,
    lines,
    valid,
    robust,
    task,
    taskNames,
    keys,
    examples,
    flags,
    problems,
    lengths: Int32Array.from(lengths),
    tokens,
    signatures,
  };
}

/** The transferable buffers of a result (moved to the main thread, not copied). */
export function transferList(r: BatchResult): ArrayBuffer[] {
  return [r.lines, r.valid, r.robust, r.task, r.keys, r.examples, r.flags, r.lengths, r.tokens, r.signatures].map(
    (a) => a.buffer as ArrayBuffer,
  );
}
