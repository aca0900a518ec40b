// `ringtune data check` and `ringtune data preview`: the data pipeline of a job spec, for people.
import { IGNORE_INDEX } from "../../native/js/addon.js";
import type { Command } from "../args.js";
import { parseFlags, requireFlag, intFlag } from "../args.js";
import { loadSpec } from "../../spec/load.js";
import { isBadRecord } from "../../data/data_keys.js";
import { prepareDataset, type PreparedDataset } from "../../data/streamed_pipeline.js";
import { formatProblem } from "../../text/records/problems.js";
import { rowToJson, type Row } from "../../data/rows/row.js";
import type { DataStats } from "../../data/stats.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";
import { memoryLines } from "../memory_lines.js";
import type { PairStats } from "../../data/preference/pair_spec.js";
import { preparePairsCached } from "../../data/preference/pair_cache.js";
import type { JobSpec } from "../../spec/job_spec.js";

/** The job's data as the coordinator prepares it: pairs for stage dpo, examples otherwise. */
async function prepare(
  spec: JobSpec,
  opts: { quiet?: boolean; useCache: boolean },
): Promise<PreparedDataset & { stats: { pairs?: PairStats } }> {
  return spec.stage === "dpo" ? preparePairsCached(spec, opts) : await prepareDataset(spec, opts);
}

function pairLines(p: PairStats | undefined): string[] {
  if (!p) return [];
  const tasks = Object.entries(p.perTask)
    .sort()
    .map(([task, n]) => `${task} ${n}`)
    .join(", ");
  return [
    `pairs: ${p.train} train, ${p.val} val; per task_type: ${tasks || "none"}`,
    `  mean positions: prompt ${p.meanPromptLength.toFixed(1)}, chosen ${p.meanChosenLength.toFixed(1)}, rejected ${p.meanRejectedLength.toFixed(1)}`,
  ];
}

const check: Command = {
  name: "data check",
  summary: "report every bad record of a job's data as file:line: reason, then counts",
  usage: "usage: ringtune data check --spec JOB.yaml [--no-cache]",
  async run(argv) {
    const { values } = parseFlags(argv, { spec: { type: "string" }, "no-cache": { type: "boolean" } });
    const spec = loadSpec(requireFlag(values, "spec"));
    const d = await prepare(spec, { useCache: !values["no-cache"] });
    d.close();
    for (const p of d.problems) console.log(formatProblem(p));
    const s = d.stats;
    console.log(
      `\n${s.recordsRead} records read, ${s.recordsKept} kept; dropped: ${describeDropped(s)}; ` +
        `${s.nearDuplicates} near-duplicate(s) reported; ${s.truncated} truncated, ${s.split} split`,
    );
    for (const line of pairLines(s.pairs)) console.log(line);
    for (const line of memoryLines(spec)) console.log(line);
    if (d.failed) {
      console.log(`on_bad_record: fail: ${d.problems.filter(isBadRecord).length} bad record(s)`);
      return 1;
    }
    return 0;
  },
};

const preview: Command = {
  name: "data preview",
  summary: "statistics of a job's tokenized, packed data; --json: one row per line; --decode: rows as text",
  usage: "usage: ringtune data preview --spec JOB.yaml [--json] [--decode] [--rows N] [--val] [--no-cache]",
  async run(argv) {
    const { values } = parseFlags(argv, {
      spec: { type: "string" },
      json: { type: "boolean" },
      decode: { type: "boolean" },
      rows: { type: "string" },
      val: { type: "boolean" },
      "no-cache": { type: "boolean" },
    });
    const json = Boolean(values.json);
    const spec = loadSpec(requireFlag(values, "spec"));
    const d = await prepare(spec, { quiet: json, useCache: !values["no-cache"] });
    if (d.failed) {
      for (const p of d.problems.filter(isBadRecord)) console.error(formatProblem(p));
      throw new Error("on_bad_record: fail and bad records were found (see above; 'ringtune data check' lists all)");
    }
    const rows = values.val ? d.val : d.train;
    if (json) {
      const limit = intFlag(values, "rows", rows.length);
      // One row read from the token cache at a time: the output may be larger than memory.
      for (let i = 0; i < Math.min(limit, rows.length); i++)
        process.stdout.write(JSON.stringify(rowToJson(rows.get(i))) + "\n");
      return 0;
    }
    printStats(d);
    if (values.decode) {
      const limit = intFlag(values, "rows", 3);
      rows
        .slice(0, limit)
        .forEach((r, i) =>
          console.log(`\n--- ${values.val ? "val" : "train"} row ${i} ---\n${decodeRow(r, d.setup.tokenizer)}`),
        );
    }
    return 0;
  },
};

function describeDropped(s: DataStats): string {
  const parts = Object.entries(s.dropped)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`);
  return parts.length ? parts.join(", ") : "none";
}

function printStats(d: PreparedDataset & { stats: { pairs?: PairStats } }): void {
  const s = d.stats;
  for (const line of pairLines(s.pairs)) console.log(line);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`records: ${s.recordsRead} read, ${s.recordsKept} kept; dropped: ${describeDropped(s)}`);
  console.log(
    `         ${s.nearDuplicates} near-duplicate(s) reported, ${s.truncated} truncated, ${s.split} split into chunks${d.fromCache ? " (from cache)" : ""}`,
  );
  for (const src of s.sources)
    console.log(`  ${src.file}: ${src.read} read, ${src.valid} valid, ${src.mixed} examples in the training mix`);
  console.log("per task_type (training mix):");
  for (const [task, t] of Object.entries(s.perTask).sort()) {
    console.log(
      `  ${task.padEnd(24)} ${String(t.examples).padStart(8)} examples ${String(t.tokens).padStart(10)} tokens ${String(t.targets).padStart(10)} targets`,
    );
  }
  for (const [name, x] of [
    ["train", s.train],
    ["val", s.val],
  ] as const) {
    console.log(
      `${name}: ${x.examples} examples, ${x.rows} rows, ${x.tokens} tokens, ${x.targets} targets, packing efficiency ${pct(x.efficiency)} (${x.tokens}/${x.rowTokens})`,
    );
  }
}

/**
 * A row as text, one segment per block; target spans in [[...]] (the tokens the labels ask for, at the
 * positions that predict them, shown where they sit in the text), padding summarised.
 */
export function decodeRow(r: Row, tok: TextTokenizer): string {
  const out: string[] = [];
  let t = 0;
  const n = r.inputIds.length;
  while (t < n) {
    const seg = r.segmentIds[t];
    let end = t;
    while (end < n && r.segmentIds[end] === seg) end++;
    const task = r.taskTypes[seg];
    if (task === undefined) {
      out.push(`[segment ${seg}: padding x${end - t}]`);
    } else {
      // Token k is a target when the position before it has label k: show the text of tokens
      // t..end-1 plus the last label, each run of targets bracketed.
      const ids = [...r.inputIds.subarray(t, end), r.labels[end - 1] === IGNORE_INDEX ? -1 : r.labels[end - 1]];
      const isTarget = ids.map((_, k) => k > 0 && r.labels[t + k - 1] !== IGNORE_INDEX);
      let text = "";
      let k = 0;
      while (k < ids.length) {
        let j = k;
        while (j < ids.length && isTarget[j] === isTarget[k]) j++;
        const pieceIds = ids.slice(k, j).filter((x) => x >= 0);
        const piece = pieceIds.length ? tok.decode(pieceIds) : "";
        text += isTarget[k] ? `[[${piece}]]` : piece;
        k = j;
      }
      out.push(`[segment ${seg}: ${task}, ${end - t} positions]\n${text}`);
    }
    t = end;
  }
  return out.join("\n");
}

export const dataCommands: Command[] = [check, preview];
