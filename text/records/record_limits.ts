// Bounds on one record, so one huge line (a whole corpus on one line, a base64 blob) is refused as a bad
// record instead of being held in memory whole: bytes are checked while the file is read, tokens once the
// record is tokenized (byte-level tokenizers make at most one token per byte, so the byte bound caps the
// work before the token count is known).

/** Bytes of one record's text in the file (a JSONL line, a JSON array element, a `.txt` line). */
export const DEFAULT_MAX_RECORD_BYTES = 32 << 20;
/** Tokens of one record once templated, before it is fitted to seq_len. */
export const DEFAULT_MAX_RECORD_TOKENS = 1 << 22;
/** The most a job may raise them to: a record must still fit in one string and one worker's memory. */
export const MAX_RECORD_BYTES_LIMIT = 256 << 20;
export const MAX_RECORD_TOKENS_LIMIT = 1 << 26;

export function recordBytesProblem(limit: number): string {
  return `record is larger than max_record_bytes (${limit} bytes); raise max_record_bytes to read it`;
}

export function recordTokensProblem(tokens: number, limit: number): string {
  return `record has ${tokens} tokens, over max_record_tokens (${limit}); raise max_record_tokens to keep it`;
}

/** Whether a decoded record's UTF-8 form is longer than `limit` bytes (byteLength only when it could be). */
export function overByteLimit(text: string, limit: number): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes, and at least 1.
  if (text.length > limit) return true;
  return 3 * text.length > limit && Buffer.byteLength(text, "utf8") > limit;
}
