#!/usr/bin/env node
// Generates the preference pairs of the demo's second act (examples/demo/dpo.yaml): new sentences from the
// training pools (never one of train.jsonl or heldout.jsonl, never a held-out name or order number, and
// order numbers train.jsonl does not have, as in the held-out prompts), each
// with the correct JSON as the chosen answer and, as the rejected one, the kind of mistake a model trained
// on train.jsonl still makes on sentences it has not seen, or one that breaks the JSON-only rule:
//   value   a value copied wrongly: digits of the order number (most often), age or quantity changed,
//           swapped or skipped (9916 -> 9991), or a name, city or item replaced by another one from the
//           pools (most pairs: these are the errors left after the first act, whose answers are almost
//           always JSON already; its held-out misses are order numbers copied wrongly)
//   words   the right JSON with words around it ("Sure! ...", "... Hope this helps.")
//   field   a wrong field: a renamed key, a key left out, or a number written as a string
// TRL's conversational form (`prompt`, `chosen`, `rejected` as message lists) with the record's task_type.
// Deterministic (a seeded PRNG, no clock, no Math.random): rerun with
//   node examples/demo/make_pairs.mjs [--out FILE] [--pairs N] [--seed N]
// and pairs.jsonl comes out byte for byte the same.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CITY, FIRST, ITEM, LAST, makeDemoData, order, person, record, rng } from "./make_data.mjs";

const pick = (r, list) => list[Math.floor(r() * list.length)];

/** Another entry of `list` than `value`. */
function other(r, list, value) {
  let x;
  do x = pick(r, list);
  while (x === value);
  return x;
}

/**
 * The number with its digits copied wrongly, as many digits as it has: one digit changed, two neighbours
 * swapped, or a digit skipped while another is written twice (9916 -> 9991), never a leading zero.
 */
function wrongDigits(r, n) {
  const s = String(n);
  for (;;) {
    const d = s.split("");
    const i = Math.floor(r() * d.length);
    const kind = Math.floor(r() * 3);
    if (kind === 0) d[i] = String((Number(d[i]) + 1 + Math.floor(r() * 9)) % 10);
    else if (kind === 1 && i + 1 < d.length) [d[i], d[i + 1]] = [d[i + 1], d[i]];
    else if (kind === 2 && d.length > 1) {
      d.splice(i, 1);
      const j = Math.floor(r() * d.length);
      d.splice(j, 0, d[j]);
    } else continue;
    const t = d.join("");
    if (t !== s && t[0] !== "0") return Number(t);
  }
}

/** The answer with one value copied wrongly. */
function wrongValue(r, answer) {
  const a = { ...answer };
  if ("name" in a) {
    const [first, last] = a.name.split(" ");
    const which = Math.floor(r() * 4);
    if (which === 0) a.name = `${other(r, FIRST, first)} ${last}`;
    else if (which === 1) a.name = `${first} ${other(r, LAST, last)}`;
    else if (which === 2) a.age = wrongDigits(r, a.age);
    else a.city = other(r, CITY, a.city);
  } else {
    // Numbers most often: the order number (never one of train.jsonl's) and the quantity are what the first
    // act copies worst.
    const which = Math.floor(r() * 5);
    if (which <= 1) a.order = wrongDigits(r, a.order);
    else if (which <= 3) a.qty = wrongDigits(r, a.qty);
    else if (r() < 0.5) a.item = other(r, ITEM, a.item);
    else a.city = other(r, CITY, a.city);
  }
  return JSON.stringify(a);
}

const BEFORE = ["Sure! ", "Here is the JSON: ", "Answer: ", "```json\n", "The JSON is "];
const AFTER = ["", " Hope this helps.", "\nLet me know if you need more.", "\n```", " Done."];

/** The right JSON with words around it. */
function withWords(r, answer) {
  const i = Math.floor(r() * BEFORE.length);
  const tail = BEFORE[i] === "```json\n" ? "\n```" : pick(r, AFTER);
  return `${BEFORE[i]}${JSON.stringify(answer)}${tail}`;
}

const RENAMED = { name: "full_name", age: "years", city: "town", order: "order_id", qty: "quantity", item: "product" };

/** The answer with a wrong field: a key renamed or left out, or a number as a string. */
function wrongField(r, answer) {
  const keys = Object.keys(answer);
  const key = pick(r, keys);
  const kind = Math.floor(r() * 3);
  const a = {};
  for (const k of keys) {
    if (k !== key) a[k] = answer[k];
    else if (kind === 0) a[RENAMED[k]] = answer[k];
    else if (kind === 1 && typeof answer[k] === "number") a[k] = String(answer[k]);
    // kind 2 (or a string value under kind 1): the key is left out
  }
  return JSON.stringify(a);
}

/**
 * Which kind of rejected answer the i-th pair gets: 8 in 10 a wrong value, 1 in 10 each words and a field.
 * The first act's model already answers in JSON only; the values are where it still errs.
 */
const KINDS = ["value", "value", "value", "words", "value", "value", "value", "value", "field", "value"];

/** n pairs (alternating task types), seeded; the sentences are new to the demo's other files. */
export function makeDemoPairs({ pairs = 4000, seed = 20240613 } = {}) {
  const data = makeDemoData();
  const seen = new Set([...data.train, ...data.heldout].map((x) => x.messages[1].content));
  // Order numbers as the held-out prompts have them: never seen in training, so copied digit by digit.
  const trainOrders = new Set(data.train.map((x) => JSON.parse(x.messages[2].content).order).filter(Boolean));
  const r = rng(seed);
  const out = [];
  for (let guard = 0; out.length < pairs; guard++) {
    if (guard > pairs * 100) throw new Error(`cannot find ${pairs} new sentences`);
    const x = (out.length % 2 === 0 ? person : order)(r, false);
    if (seen.has(x.sentence) || trainOrders.has(x.answer.order)) continue;
    seen.add(x.sentence);
    const [system, user, assistant] = record(x).messages;
    const kind = KINDS[out.length % KINDS.length];
    const rejected =
      kind === "value" ? wrongValue(r, x.answer) : kind === "words" ? withWords(r, x.answer) : wrongField(r, x.answer);
    out.push({
      task_type: x.task_type,
      prompt: [system, user],
      chosen: [assistant],
      rejected: [{ role: "assistant", content: rejected }],
    });
  }
  return out;
}

function main(argv) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const opts = {};
  let out = path.join(here, "pairs.jsonl");
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--out" && v) out = path.resolve(v);
    else if (["--pairs", "--seed"].includes(k) && /^\d+$/.test(v ?? "")) opts[k.slice(2)] = Number(v);
    else throw new Error(`usage: make_pairs.mjs [--out FILE] [--pairs N] [--seed N] (bad argument ${k})`);
  }
  const pairs = makeDemoPairs(opts);
  writeFileSync(out, pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
  console.log(`wrote ${pairs.length} pairs to ${out}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
