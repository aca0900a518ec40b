// A strict reader of the Prometheus text exposition format (version 0.0.4): HELP and TYPE comments,
// samples `name{label="value",...} value [timestamp]`, with the rules a scraper relies on (valid names,
// escaped label values, one TYPE per family before its samples, histogram buckets cumulative and ending
// at +Inf equal to _count). Any breach throws with the line number.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, where: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: '${text}' is not a value`);
  return Number(text);
}

/** `{a="x",b="y\"z"}` from position `i` of `line`; returns the labels and the position after `}`. */
function parseLabels(line: string, i: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++; // {
  while (line[i] !== "}") {
    const eq = line.indexOf("=", i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = line.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name '${name}'`);
    if (name in labels) throw new Error(`${where}: label '${name}' twice`);
    if (line[eq + 1] !== '"') throw new Error(`${where}: label ${name}'s value is not quoted`);
    let value = "";
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === "\\") {
        const next = line[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new Error(`${where}: bad escape '\\${next}' in label ${name}`);
      } else value += line[j];
    }
    if (j >= line.length) throw new Error(`${where}: unterminated value of label ${name}`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`${where}: expected ',' or '}' after label ${name}`);
  }
  return { labels, end: i + 1 };
}

/** The family a sample belongs to: histogram/summary samples carry a suffix. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  for (const suffix of ["", "_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, name.length - suffix.length);
    const f = families.get(base);
    if (f && (suffix === "" || f.type === "histogram" || f.type === "summary")) return f;
  }
  return undefined;
}

function checkHistograms(families: Map<string, Family>): void {
  for (const f of families.values()) {
    if (f.type !== "histogram") continue;
    const groups = new Map<string, Sample[]>();
    for (const s of f.samples) {
      const { le: _le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    for (const [key, samples] of groups) {
      const buckets = samples.filter((s) => s.name === `${f.name}_bucket`);
      const count = samples.find((s) => s.name === `${f.name}_count`);
      if (buckets.length === 0 || !count || !samples.some((s) => s.name === `${f.name}_sum`))
        throw new Error(`histogram ${f.name} ${key}: needs _bucket, _sum and _count samples`);
      const les = buckets.map((b) => parseValue(b.labels.le ?? "", `${f.name} le`));
      for (let i = 1; i < buckets.length; i++)
        if (!(les[i]! > les[i - 1]!) || buckets[i]!.value < buckets[i - 1]!.value)
          throw new Error(`histogram ${f.name} ${key}: buckets not increasing at le=${buckets[i]!.labels.le}`);
      if (les.at(-1) !== Infinity) throw new Error(`histogram ${f.name} ${key}: no le="+Inf" bucket`);
      if (buckets.at(-1)!.value !== count.value)
        throw new Error(`histogram ${f.name} ${key}: +Inf bucket ${buckets.at(-1)!.value} != _count ${count.value}`);
    }
  }
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const sampled = new Set<string>();
  const seen = new Set<string>();
  text.split("\n").forEach((raw, index) => {
    const where = `line ${index + 1}`;
    const line = raw.trimEnd();
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest = ""] = m;
      if (!METRIC_NAME.test(name!)) throw new Error(`${where}: bad metric name '${name}'`);
      const f = families.get(name!) ?? { name: name!, type: "untyped", help: "", samples: [] };
      families.set(name!, f);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type '${rest}'`);
        if (sampled.has(name!)) throw new Error(`${where}: TYPE of ${name} after its samples`);
        if (f.type !== "untyped") throw new Error(`${where}: second TYPE for ${name}`);
        f.type = rest;
      } else f.help = rest;
      return;
    }
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) throw new Error(`${where}: not a sample: '${line}'`);
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name '${name}'`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === "{") ({ labels, end: i } = parseLabels(line, i, where));
    const fields = line.slice(i).trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2 || fields[0] === "") throw new Error(`${where}: expected a value`);
    const value = parseValue(fields[0]!, where);
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new Error(`${where}: bad timestamp`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`${where}: sample ${key} twice`);
    seen.add(key);
    let f = familyOf(name, families);
    if (!f) {
      f = { name, type: "untyped", help: "", samples: [] };
      families.set(name, f);
    }
    sampled.add(f.name);
    f.samples.push({ name, labels, value });
  });
  checkHistograms(families);
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`; throws when none or several match. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const f = familyOf(name, families);
  const matches = (f?.samples ?? []).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (matches.length !== 1)
    throw new Error(`${matches.length} samples of ${name} ${JSON.stringify(labels)} (expected exactly one)`);
  return matches[0]!.value;
}
