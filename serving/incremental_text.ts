// The text of a growing list of token ids, handed out in pieces as it becomes final: a piece is held back
// while it might still change (an unfinished UTF-8 character decodes to U+FFFD) or might be the start of
// a stop string, so a stream never shows text the full answer does not have.

const REPLACEMENT = "\uFFFD";

export class IncrementalText {
  private readonly ids: number[] = [];
  private full = "";
  private given = 0;
  private stopped = false;

  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    private readonly stopStrings: readonly string[],
  ) {}

  /** the text so far, cut before a stop string once one appeared */
  get text(): string {
    return this.full;
  }

  /** adds a token; true when the text now contains a stop string (the text is then cut before it) */
  push(id: number): boolean {
    if (this.stopped) return true;
    this.ids.push(id);
    this.full = this.decode(this.ids);
    for (const stop of this.stopStrings) {
      const at = this.full.indexOf(stop, Math.max(0, this.given - stop.length));
      if (at >= 0) {
        this.full = this.full.slice(0, at);
        this.stopped = true;
      }
    }
    return this.stopped;
  }

  /** the text that became final since the last call */
  takeFinal(): string {
    let end = this.full.length;
    if (!this.stopped) {
      while (end > this.given && this.full[end - 1] === REPLACEMENT) end--;
      for (const stop of this.stopStrings)
        for (let k = Math.min(stop.length - 1, end - this.given); k > 0; k--)
          if (this.full.slice(end - k, end) === stop.slice(0, k)) {
            end -= k;
            break;
          }
    }
    return this.take(end);
  }

  /** everything not handed out yet: the generation ended */
  takeRest(): string {
    return this.take(this.full.length);
  }

  private take(end: number): string {
    if (end <= this.given) return "";
    const piece = this.full.slice(this.given, end);
    this.given = end;
    return piece;
  }
}
