// Generation eval: held-out prompts before and after training, scored by exact match and JSON
// validity per task_type. The coordinator loads the prompts (loadEvalPrompts), a worker generates
// greedily up to max_new_tokens, stopping at chatStopIds (as serving does), and scoreGenerations turns
// the outputs into a GenerationEvalReport (its schema is in proto/; the CLI prints it).
import path from "node:path";
import type { EvalSample, GenerationEvalReport, TaskScore } from "../../proto/mod.js";
import type { JobSpec } from "../../spec/job_spec.js";
import type { DataFormat } from "../../text/formats/formats.js";
import { normalizeRecord } from "../../text/formats/formats.js";
import { readRecords } from "../../text/readers/read.js";
import type { Message, Source, ToolCall } from "../../text/records/records.js";
import type { TextSetup } from "../../spec/text_setup.js";
import { readsToolCalls, renderChatPrompt } from "../../text/chat_prompt.js";
import { chatStopIds } from "../../text/stop_ids.js";
import { parseToolCalls } from "../../text/tool_call_answers.js";
import { answersMatch, parseJson } from "../../text/answer_match.js";
import { isDeepStrictEqual } from "node:util";

export interface EvalPrompt {
  /** the rendered prompt, tokenized: the conversation before the last assistant turn plus the generation prompt */
  ids: Int32Array;
  /** the rendered prompt as text */
  text: string;
  /** the last assistant turn's content: what the model should answer */
  expected: string;
  taskType: string;
  /** the last user message (for display) */
  question: string;
  source: Source;
  /** the conversation before the answer, and the tools it offers: what a client would send a server */
  messages: Message[];
  tools?: unknown[];
  /** the tool calls the last assistant turn makes (when the record offers tools) */
  expectedCalls?: ToolCall[];
}

export class GenerationEvalError extends Error {
  override name = "GenerationEvalError";
  constructor(readonly problems: string[]) {
    super(
      `generation_eval: ${problems.length} bad record(s):\n  ${problems.slice(0, 20).join("\n  ")}${problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : ""}`,
    );
  }
}

const SAMPLES_PER_TASK = 3;
const EXCERPT = 100;

/** generation_eval's format names, in the data pipeline's terms. */
function dataFormat(f: NonNullable<JobSpec["generation_eval"]>["format"]): DataFormat {
  return f === "messages" ? "openai" : f;
}

/**
 * The job's held-out prompts: each record's conversation up to its last assistant turn, rendered by the
 * job's template with the generation prompt and tokenized; that turn's content is the expected answer.
 * `limit` keeps the first N records. Bad records throw GenerationEvalError with `file:line: reason` lines.
 */
export function loadEvalPrompts(
  spec: Pick<JobSpec, "generation_eval">,
  setup: TextSetup,
  opts: { displayRoot?: string } = {},
): EvalPrompt[] {
  const ge = spec.generation_eval;
  if (!ge) throw new Error("the job has no generation_eval");
  const file = path.relative(opts.displayRoot ?? process.cwd(), ge.path) || ge.path;
  let raws;
  try {
    raws = readRecords(ge.path);
  } catch (err) {
    throw new GenerationEvalError([`${file}: cannot read: ${(err as Error).message}`]);
  }
  if (ge.limit !== undefined) raws = raws.slice(0, ge.limit);
  const problems: string[] = [];
  const prompts: EvalPrompt[] = [];
  for (const raw of raws) {
    const source = { file, line: raw.line };
    const bad = (reason: string) => problems.push(`${file}:${raw.line}: ${reason}`);
    if (raw.error !== undefined) {
      bad(raw.error);
      continue;
    }
    const n = normalizeRecord(raw.value, dataFormat(ge.format), source);
    if ("error" in n) {
      bad(n.error);
      continue;
    }
    const r = n.record;
    if (r.kind !== "chat") {
      bad("a plain 'text' record has no answer to compare with: use messages, conversations or instruction/output");
      continue;
    }
    const last = lastIndexOf(r.messages, (m) => m.role === "assistant");
    if (last < 0) {
      bad("no assistant turn: nothing to compare the generation with");
      continue;
    }
    const answer = r.messages[last];
    const calls = readsToolCalls(r.tools) ? (answer.toolCalls ?? []) : [];
    if (answer.content.trim() === "" && calls.length === 0) {
      bad(`turn ${last + 1}: the last assistant turn has no text (or, with tools, no tool calls) to compare with`);
      continue;
    }
    const before = r.messages.slice(0, last);
    if (!before.some((m) => m.role === "user")) {
      bad(`turn ${last + 1}: no user turn before the last assistant turn`);
      continue;
    }
    let rendered;
    try {
      rendered = renderChatPrompt(setup, before, r.tools);
    } catch (err) {
      bad(`template ${setup.template.name}: ${(err as Error).message}`);
      continue;
    }
    const question = before[lastIndexOf(before, (m) => m.role === "user")].content;
    prompts.push({
      ids: Int32Array.from(rendered.ids),
      text: rendered.text,
      expected: answer.content,
      taskType: r.taskType,
      question,
      source,
      messages: before,
      tools: r.tools,
      expectedCalls: readsToolCalls(r.tools) ? calls : undefined,
    });
  }
  if (problems.length) throw new GenerationEvalError(problems);
  if (prompts.length === 0) throw new GenerationEvalError([`${file}: no records`]);
  return prompts;
}

export interface SkippedPrompt {
  /** file:line of the held-out record */
  example: string;
  prompt_tokens: number;
  reason: string;
}

/**
 * The prompts a server of the model would answer with max_new_tokens: those whose prompt and answer fit
 * the model's context (max_position_embeddings, as `ringtune serve` bounds a request). The others are
 * skipped, each named with why, instead of generating past the positions the model was built for.
 */
export function promptsWithinContext(
  prompts: EvalPrompt[],
  maxNewTokens: number,
  context: number,
): { asked: EvalPrompt[]; skipped: SkippedPrompt[] } {
  const asked: EvalPrompt[] = [];
  const skipped: SkippedPrompt[] = [];
  for (const p of prompts) {
    if (p.ids.length + maxNewTokens <= context) asked.push(p);
    else
      skipped.push({
        example: `${p.source.file}:${p.source.line}`,
        prompt_tokens: p.ids.length,
        reason:
          `the prompt has ${p.ids.length} tokens and max_new_tokens is ${maxNewTokens}: together more than the ` +
          `model's context of ${context} tokens (max_position_embeddings), which a server of the model refuses too`,
      });
  }
  return { asked, skipped };
}

function lastIndexOf<T>(xs: T[], f: (x: T) => boolean): number {
  for (let i = xs.length - 1; i >= 0; i--) if (f(xs[i])) return i;
  return -1;
}

/** The generated answer as text: tokens up to (not including) the first stop token. */
export function decodeAnswer(
  output: ArrayLike<number>,
  setup: TextSetup,
  stopIds: ArrayLike<number> = chatStopIds(setup),
): string {
  const stop = new Set(Array.from(stopIds));
  let end = 0;
  while (end < output.length && !stop.has(output[end])) end++;
  return setup.tokenizer.decode(Array.prototype.slice.call(output, 0, end) as number[]);
}

export { answersMatch };

function excerpt(s: string, n = EXCERPT): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

interface Tally {
  count: number;
  valid: number;
  exact: number;
  samples: EvalSample[];
}

const share = (k: number, n: number) => (n === 0 ? 0 : k / n);
const finish = (t: Tally): TaskScore => ({
  count: t.count,
  json_valid: share(t.valid, t.count),
  exact_match: share(t.exact, t.count),
  samples: t.samples,
});

/** An answer as a client of the server reads it: with tools offered, its calls apart from its content. */
export interface ReadAnswer {
  /** the decoded text up to the stop token */
  text: string;
  /** the text outside tool calls (all of it without tools); null when nothing is left */
  content: string | null;
  toolCalls: ToolCall[];
}

export function readAnswer(p: Pick<EvalPrompt, "tools">, text: string, setup: TextSetup): ReadAnswer {
  if (!readsToolCalls(p.tools)) return { text, content: text, toolCalls: [] };
  const a = parseToolCalls(text, setup.template.name, "eval");
  return { text, content: a.content, toolCalls: a.toolCalls.map((c) => c.function) };
}

/** Same functions called with arguments equal as JSON values (as text when not JSON), in order. */
function callsMatch(expected: readonly ToolCall[], got: readonly ToolCall[]): boolean {
  if (expected.length !== got.length) return false;
  return expected.every((e, i) => {
    const g = got[i];
    const ea = parseJson(e.arguments);
    const ga = parseJson(g.arguments);
    const same = ea.ok && ga.ok ? isDeepStrictEqual(ea.value, ga.value) : e.arguments.trim() === g.arguments.trim();
    return e.name === g.name && same;
  });
}

/** Exact match of a read answer: its calls as expected and its content (none where none is expected). */
function answerMatches(p: EvalPrompt, a: ReadAnswer): boolean {
  if (!callsMatch(p.expectedCalls ?? [], a.toolCalls)) return false;
  if (p.expected.trim() === "") return (a.content ?? "").trim() === "";
  return answersMatch(p.expected, a.content ?? "");
}

/** Each prompt's answer, read as serving reads it. */
export function readAnswers(
  prompts: EvalPrompt[],
  outputs: ArrayLike<number>[],
  setup: TextSetup,
  stopIds: ArrayLike<number> = chatStopIds(setup),
): ReadAnswer[] {
  if (outputs.length !== prompts.length)
    throw new Error(`scoreGenerations: ${prompts.length} prompts but ${outputs.length} outputs`);
  return prompts.map((p, i) => readAnswer(p, decodeAnswer(outputs[i], setup, stopIds), setup));
}

/** Scores each prompt's output (token ids as generated, a stop token and anything after it ignored). */
export function scoreGenerations(
  prompts: EvalPrompt[],
  outputs: ArrayLike<number>[],
  setup: TextSetup,
  opts: { maxNewTokens?: number; stopIds?: ArrayLike<number> } = {},
): GenerationEvalReport {
  const answers = readAnswers(prompts, outputs, setup, opts.stopIds);
  const all: Tally = { count: 0, valid: 0, exact: 0, samples: [] };
  const byTask = new Map<string, Tally>();
  prompts.forEach((p, i) => {
    const a = answers[i];
    const valid = parseJson((a.content ?? "").trim()).ok;
    const exact = answerMatches(p, a);
    let t = byTask.get(p.taskType);
    if (!t) byTask.set(p.taskType, (t = { count: 0, valid: 0, exact: 0, samples: [] }));
    const sample = { prompt: excerpt(p.question), expected: p.expected, got: excerpt(a.text, 200) };
    for (const x of [t, all]) {
      x.count++;
      if (valid) x.valid++;
      if (exact) x.exact++;
      if (x.samples.length < SAMPLES_PER_TASK) x.samples.push(sample);
    }
  });
  const tasks: Record<string, TaskScore> = {};
  for (const k of [...byTask.keys()].sort()) tasks[k] = finish(byTask.get(k)!);
  const report: GenerationEvalReport = { overall: finish(all), tasks };
  if (opts.maxNewTokens !== undefined) report.max_new_tokens = opts.maxNewTokens;
  return report;
}
