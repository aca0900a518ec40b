// `ringtune submit JOB.yaml --set max_steps=20 --set generation_eval.max_new_tokens=32`: changes a few
// keys of a job file for one run without editing it (a shorter try of a job, an output folder elsewhere).
// Values are read as YAML scalars or flow collections, so numbers stay numbers and `[a, b]` is a list.
import { parse as parseYaml } from "yaml";
import { UsageError } from "./args.js";

type Mapping = Record<string, unknown>;

const isMapping = (x: unknown): x is Mapping => typeof x === "object" && x !== null && !Array.isArray(x);

/** Returns a copy of `spec` with each `KEY=VALUE` set; KEY may be dotted (`lora.rank`). */
export function applySpecOverrides(spec: Mapping, assignments: string[]): Mapping {
  const out = structuredClone(spec);
  for (const a of assignments) {
    const eq = a.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set expects KEY=VALUE, got '${a}'`);
    const keys = a.slice(0, eq).split(".");
    if (keys.some((k) => k === "")) throw new UsageError(`--set ${a}: empty key in '${a.slice(0, eq)}'`);
    let value: unknown;
    try {
      value = parseYaml(a.slice(eq + 1));
    } catch (err) {
      throw new UsageError(`--set ${a}: the value is not valid YAML (${(err as Error).message})`);
    }
    let at = out;
    for (const k of keys.slice(0, -1)) {
      if (at[k] === undefined) at[k] = {};
      const next = at[k];
      // Setting inside a list or a scalar has no one meaning: say which key is in the way.
      if (!isMapping(next)) throw new UsageError(`--set ${a}: '${k}' is not a mapping in the job file`);
      at = next;
    }
    at[keys[keys.length - 1]!] = value;
  }
  return out;
}
