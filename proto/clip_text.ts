// Text that comes from a message (a value echoed in a refusal, an error's message) is cut to a bounded
// length before it goes into a reply or a log line: a 5 MB field must not make a 10 MB answer.

/** The most characters of foreign text a refusal or log line repeats. */
export const ECHO_LIMIT = 200;
/** The most characters of one error message in a reply. */
export const MESSAGE_LIMIT = 2000;

/** `text` itself when short enough, else its first `max` characters and how many were left out. */
export function clipText(text: string, max: number = ECHO_LIMIT): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}... (${text.length - max} more characters)`;
}

/** A value as JSON for a message, clipped: never the whole of a huge value. */
export function clippedJson(value: unknown, max: number = ECHO_LIMIT): string {
  if (typeof value === "string" && value.length > max) return JSON.stringify(clipText(value, max));
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return clipText(text, max);
}
