// Tool call arguments arrive as JSON text (OpenAI style); templates show them as JSON values.

/** The arguments as a value when they parse as JSON, else the text itself. */
export function parseArgs(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}
