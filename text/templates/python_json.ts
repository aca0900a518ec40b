// JSON as Python's json.dumps writes it, which is what Hugging Face chat templates' `tojson` produce
// (", " between items and ": " after keys, non-ASCII kept): tool schemas and call arguments must reach
// the model in the same spelling it saw in pretraining and sees at inference.

export function pythonJson(value: unknown, indent = 0, depth = 0): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string" || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") return Number.isFinite(value) ? JSON.stringify(value) : "NaN";
  const pad = indent > 0 ? "\n" + " ".repeat(indent * (depth + 1)) : "";
  const close = indent > 0 ? "\n" + " ".repeat(indent * depth) : "";
  // With an indent Python ends lines after "," instead of writing ", ".
  const sep = indent > 0 ? "," : ", ";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[${pad}${value.map((v) => pythonJson(v, indent, depth + 1)).join(sep + pad)}${close}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return "{}";
  const items = entries.map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v, indent, depth + 1)}`);
  return `{${pad}${items.join(sep + pad)}${close}}`;
}
