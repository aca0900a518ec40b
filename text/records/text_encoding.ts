// Data files must be UTF-8. Node decodes invalid bytes to U+FFFD without a word, which would train the
// model on replacement characters; a record holding one is refused instead (an honest U+FFFD in a UTF-8
// file is vanishingly rare in training text, and JSON can still write it as \ufffd). A UTF-8 byte order
// mark at the start of a file is allowed and skipped.

export const NOT_UTF8 = "not valid UTF-8 (bytes that do not decode; save the file as UTF-8)";

/** The text without a leading byte order mark. */
export function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Whether a decoded record's text shows bytes that were not UTF-8. */
export function hasUndecodableBytes(text: string): boolean {
  return text.includes("\ufffd");
}
