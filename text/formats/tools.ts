// Tool definitions as datasets give them, made into the one shape chat templates expect:
// a list of `{"type": "function", "function": {name, description, parameters}}`.
// Glaive- and LLaMA-Factory-style data give the list as a JSON string and the schemas bare.

export type ToolsResult = { tools: unknown[] | undefined } | { error: string };

/** `value` is the record's `tools` field (a list, a JSON string of a list, or absent); `field` names it. */
export function normalizeTools(value: unknown, field = "tools"): ToolsResult {
  if (value === undefined || value === null) return { tools: undefined };
  let list = value;
  if (typeof value === "string") {
    // an empty string is how LLaMA-Factory-style data says "no tools"
    if (value.trim() === "") return { tools: undefined };
    try {
      list = JSON.parse(value);
    } catch (err) {
      return { error: `'${field}' is a string but not valid JSON (${(err as Error).message})` };
    }
  }
  if (!Array.isArray(list)) {
    if (isObject(list)) list = [list];
    else return { error: `'${field}' must be a list of function schemas (or a JSON string of one)` };
  }
  const tools: unknown[] = [];
  for (let i = 0; i < (list as unknown[]).length; i++) {
    const t = (list as unknown[])[i];
    const wrapped = wrapFunctionSchema(t);
    if (wrapped === null)
      return {
        error:
          `'${field}[${i}]' is not a function schema: expected {"name", "description", "parameters"} ` +
          `or {"type": "function", "function": {...}}`,
      };
    tools.push(wrapped);
  }
  return { tools: tools.length ? tools : undefined };
}

/** A bare `{name, description, parameters}` wrapped as `{type: "function", function: ...}`; null if neither. */
export function wrapFunctionSchema(t: unknown): unknown {
  if (!isObject(t)) return null;
  if (isObject(t.function) && typeof t.function.name === "string")
    return t.type === undefined ? { type: "function", ...t } : t;
  if (typeof t.name === "string") return { type: "function", function: t };
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
