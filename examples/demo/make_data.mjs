#!/usr/bin/env node
// Generates the `make demo` data set: sentences in, strict JSON out, in OpenAI `messages` form, two
// task types (extract/person, extract/order), several sentence patterns each.
// Deterministic (a seeded PRNG, no clock, no Math.random): rerun with
//   node examples/demo/make_data.mjs [--out DIR] [--train N] [--heldout N] [--seed N]
// and train.jsonl and heldout.jsonl come out byte for byte the same. The job's validation split comes
// from train.jsonl (val_size). The held-out prompts are sentences train.jsonl does not contain, about
// people (first + last name) and order numbers it never mentions.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const SYSTEM = "Answer with JSON only.";

export const FIRST = [
  "Maria", "John", "Ana", "Peter", "Laura", "David", "Sofia", "Lucas", "Emma", "Noah", "Olga", "Ivan", "Chen", "Mei", "Omar", "Lina",
  "Paulo", "Rosa", "Karl", "Greta", "Amir", "Sara", "Tomas", "Elena", "Jonas", "Nina", "Pablo", "Clara", "Felix", "Irene", "Hugo", "Alma",
  "Marco", "Julia", "Oscar", "Vera", "Leon", "Ida", "Rafael", "Maya", "Erik", "Nora", "Samir", "Lea", "Diego", "Hanna", "Yusuf", "Eva",
  "Victor", "Alice", "Bruno", "Carla", "Dmitri", "Fatima", "Georg", "Helen", "Igor", "Jana", "Kenji", "Lars",
];
export const LAST = [
  "Lopez", "Smith", "Silva", "Novak", "Rossi", "Weber", "Kim", "Garcia", "Moreau", "Jensen", "Costa", "Ivanova", "Tanaka", "Haddad", "Berg",
  "Santos", "Fischer", "Nowak", "Dubois", "Larsen", "Ricci", "Meyer", "Park", "Torres", "Lambert", "Nilsen", "Ferreira", "Popov", "Sato",
  "Khan", "Lund", "Pereira", "Wagner", "Kowalski", "Girard", "Hansen", "Bruno", "Schmidt", "Choi", "Ortiz", "Petit", "Olsen", "Alves", "Volkov",
  "Mori", "Aziz", "Holm", "Ramos", "Keller", "Wojcik",
];
export const CITY = [
  "Lisbon", "Oslo", "Madrid", "Berlin", "Paris", "Rome", "Vienna", "Prague", "Dublin", "Athens", "Warsaw", "Helsinki", "Zurich", "Porto",
  "Milan", "Munich", "Lyon", "Seville", "Krakow", "Bergen", "Tokyo", "Osaka", "Seoul", "Cairo", "Lima", "Quito", "Denver", "Boston",
  "Austin", "Toronto", "Sydney", "Perth", "Nairobi", "Dakar", "Tunis", "Riga", "Vilnius", "Tallinn", "Geneva", "Zagreb",
];
export const ITEM = [
  "lamps", "chairs", "tables", "books", "mugs", "shoes", "boxes", "pens", "plates", "cables", "bottles", "candles", "clocks", "bags", "hats",
  "gloves", "towels", "knives", "spoons", "radios", "fans", "kettles", "pillows", "rugs", "mirrors", "jackets", "scarves", "tents",
];
// Held out: full names (first + last) and order numbers the training data never uses; the words
// themselves are the training pools', in combinations and sentences the model has not seen.
/** A small deterministic hash (FNV-1a) of a string. */
function hash(str) {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
const reserved = (key) => hash(key) % 6 === 0;

const PERSON_PATTERNS = [
  (p) => `${p.name} is ${p.age} and lives in ${p.city}.`,
  (p) => `${p.name}, ${p.age}, lives in ${p.city}.`,
  (p) => `Meet ${p.name}: ${p.age} years old, from ${p.city}.`,
  (p) => `${p.name} (${p.age}) moved to ${p.city} last year.`,
  (p) => `Living in ${p.city}, ${p.name} just turned ${p.age}.`,
  (p) => `At ${p.age}, ${p.name} calls ${p.city} home.`,
];
const ORDER_PATTERNS = [
  (o) => `Order ${o.order}: ${o.qty} ${o.item} shipped to ${o.city}.`,
  (o) => `Order #${o.order} sends ${o.qty} ${o.item} to ${o.city}.`,
  (o) => `We shipped ${o.qty} ${o.item} to ${o.city} under order ${o.order}.`,
  (o) => `${o.city} receives ${o.qty} ${o.item} (order ${o.order}).`,
  (o) => `Order ${o.order} for ${o.city}: ${o.qty} ${o.item}.`,
];

/** mulberry32: a small seeded PRNG, the same numbers on every machine. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (r, list) => list[Math.floor(r() * list.length)];
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));

export function person(r, heldout) {
  let name;
  do name = `${pick(r, FIRST)} ${pick(r, LAST)}`;
  while (reserved(name) !== heldout);
  const p = { name, age: int(r, 18, 89), city: pick(r, CITY) };
  return { task_type: "extract/person", sentence: pick(r, PERSON_PATTERNS)(p), answer: { name: p.name, age: p.age, city: p.city } };
}

export function order(r, heldout) {
  let n;
  do n = int(r, 1000, 9999);
  while (reserved(`order ${n}`) !== heldout);
  const o = { order: n, qty: int(r, 2, 40), item: pick(r, ITEM), city: pick(r, CITY) };
  return { task_type: "extract/order", sentence: pick(r, ORDER_PATTERNS)(o), answer: { order: o.order, qty: o.qty, item: o.item, city: o.city } };
}

export function record(x) {
  return {
    task_type: x.task_type,
    messages: [
      { role: "system", content: SYSTEM },
      { role: "user", content: x.sentence },
      { role: "assistant", content: JSON.stringify(x.answer) },
    ],
  };
}

/** n records from the pools, alternating task types, each sentence new (never one already in `seen`). */
function generate(r, heldout, n, seen) {
  const out = [];
  for (let guard = 0; out.length < n; guard++) {
    if (guard > n * 100) throw new Error(`cannot find ${n} distinct sentences`);
    const x = (out.length % 2 === 0 ? person : order)(r, heldout);
    if (seen.has(x.sentence)) continue;
    seen.add(x.sentence);
    out.push(record(x));
  }
  return out;
}

/** The three data sets as arrays of records; the same counts always give the same records. */
export function makeDemoData({ train = 8000, heldout = 100, seed = 20240611 } = {}) {
  const seen = new Set();
  return {
    train: generate(rng(seed), false, train, seen),
    heldout: generate(rng(seed + 2), true, heldout, seen),
  };
}

const toJsonl = (records) => records.map((x) => JSON.stringify(x)).join("\n") + "\n";

function main(argv) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const opts = {};
  let out = here;
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--out") out = path.resolve(v);
    else if (["--train", "--heldout", "--seed"].includes(k) && /^\d+$/.test(v ?? "")) opts[k.slice(2)] = Number(v);
    else throw new Error(`usage: make_data.mjs [--out DIR] [--train N] [--heldout N] [--seed N] (bad argument ${k})`);
  }
  const d = makeDemoData(opts);
  mkdirSync(out, { recursive: true });
  for (const [name, records] of Object.entries(d)) writeFileSync(path.join(out, `${name}.jsonl`), toJsonl(records));
  console.log(`wrote ${d.train.length} train and ${d.heldout.length} heldout records to ${out}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
