// OpenAI message content given as a list of parts (`[{"type": "text", "text": ...}, ...]`).
// ringtune trains text-only models: text parts are joined; any other part is refused rather than
// dropped, because a record whose image is silently removed teaches the model to answer about
// something it never saw.

export type ContentResult = { text: string } | { error: string };

/** The separator between text parts: the one vLLM uses when it flattens parts for a text template. */
export const TEXT_PART_SEPARATOR = "\n";

const MEDIA_PARTS = new Set([
  "image_url",
  "image",
  "input_image",
  "input_audio",
  "audio",
  "video",
  "video_url",
  "file",
]);

/** `where` names the field in messages (e.g. `messages[2].content`). */
export function contentText(content: unknown, where: string): ContentResult {
  if (content === undefined || content === null) return { text: "" };
  if (typeof content === "string") return { text: content };
  if (!Array.isArray(content)) return { error: `'${where}': expected a string or a list of content parts` };
  const texts: string[] = [];
  for (let i = 0; i < content.length; i++) {
    const part = content[i] as { type?: unknown; text?: unknown } | null;
    const at = `${where}[${i}]`;
    if (typeof part === "string") {
      texts.push(part);
      continue;
    }
    if (typeof part !== "object" || part === null || typeof part.type !== "string")
      return { error: `'${at}': a content part needs a 'type'` };
    if (part.type === "text" || part.type === "input_text") {
      if (typeof part.text !== "string") return { error: `'${at}.text': expected string` };
      texts.push(part.text);
    } else if (MEDIA_PARTS.has(part.type)) {
      return { error: `'${at}': ${part.type} parts are not supported: ringtune trains text-only models` };
    } else return { error: `'${at}': unknown content part type '${part.type}'` };
  }
  return { text: texts.join(TEXT_PART_SEPARATOR) };
}
