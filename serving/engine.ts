// Continuous batching over a BatchedDecoder: requests for any adapter (or the base) wait in a queue, join
// the running batch between decode steps, and leave it as soon as they stop, are cancelled or fail, so a
// long generation never holds up a short one and every step decodes all live sequences at once.
import type { BatchedDecoder, DecodeRow, StepWithLogprobs } from "../native/js/addon.js";
import { IncrementalText } from "./incremental_text.js";

export type FinishReason = "stop" | "length" | "cancelled";

/** A generated token's log-probability under the model, and the likeliest tokens at its place. */
export interface TokenLogprob {
  token: number;
  logprob: number;
  top: { token: number; logprob: number }[];
}

export interface GenerationRequest {
  /** the decoder's adapter id, -1 for the base alone */
  adapter: number;
  promptIds: Int32Array;
  maxTokens: number;
  /** 0 = greedy */
  temperature: number;
  topP: number;
  seed: number;
  /** a token among these ends the generation (it is counted in tokenIds, not in text) */
  stopIds: ReadonlySet<number>;
  /** text ending at one of these ends the generation; the text is cut before it */
  stopStrings: readonly string[];
  decode: (ids: readonly number[]) => string;
  /** aborting ends the generation before its next step, with finish reason "cancelled" */
  signal?: AbortSignal;
  /** report each token's log-probability, and this many likeliest tokens beside it (undefined: none) */
  topLogprobs?: number;
  /** new text as it becomes final (never part of a stop string), with the tokens' log-probabilities since the last call */
  onText?: (delta: string, logprobs: TokenLogprob[]) => void;
}

export interface GenerationResult {
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
  /** one per token, when the request asked (topLogprobs set) */
  logprobs?: TokenLogprob[];
}

interface LiveSequence {
  id: number;
  request: GenerationRequest;
  /** the tokens the next step feeds: the prompt first, then the last sampled token */
  pending: Int32Array;
  generated: number[];
  logprobs: TokenLogprob[];
  /** how many of `logprobs` onText has passed on */
  logprobsSent: number;
  text: IncrementalText;
  resolve: (r: GenerationResult) => void;
  reject: (err: Error) => void;
}

export interface EngineOptions {
  /** sequences decoded together at most; more wait for a place */
  maxBatch: number;
  /**
   * How long an idle engine waits for more requests before its first step (default 0: one turn of the
   * event loop), so requests that arrive together also start together.
   */
  batchWindowMs?: number;
}

export class GenerationEngine {
  private readonly waiting: LiveSequence[] = [];
  private readonly live: LiveSequence[] = [];
  private nextId = 1;
  private running = false;
  /** completed decode steps and the rows each held, for observing how requests were batched */
  readonly stepSizes: number[] = [];
  /** generations ended, by how */
  readonly finished: Record<FinishReason | "failed", number> = { stop: 0, length: 0, cancelled: 0, failed: 0 };

  constructor(
    private readonly decoder: BatchedDecoder,
    private readonly opts: EngineOptions,
  ) {}

  generate(request: GenerationRequest): Promise<GenerationResult> {
    return new Promise((resolve, reject) => {
      const seq: LiveSequence = {
        id: this.nextId++,
        request,
        pending: request.promptIds,
        generated: [],
        logprobs: [],
        logprobsSent: 0,
        text: new IncrementalText(request.decode, request.stopStrings),
        resolve,
        reject,
      };
      this.waiting.push(seq);
      this.kick();
    });
  }

  /** sequences in the running batch and in the queue */
  get load(): { live: number; waiting: number } {
    return { live: this.live.length, waiting: this.waiting.length };
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // The loop runs as its own task; its failures end single requests, never the server.
    void this.loop().finally(() => {
      this.running = false;
      if (this.waiting.length > 0) this.kick();
    });
  }

  private async loop(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, this.opts.batchWindowMs ?? 0));
    while (this.live.length > 0 || this.waiting.length > 0) {
      this.admit();
      this.dropCancelled();
      if (this.live.length === 0) continue;
      const batch = [...this.live];
      const rows: DecodeRow[] = batch.map((s) => ({
        sequence: s.id,
        tokens: s.pending,
        temperature: s.request.temperature,
        topP: s.request.topP,
        seed: s.request.seed,
        draw: s.generated.length,
        topLogprobs: s.request.topLogprobs ?? 0,
      }));
      const wantLogprobs = batch.some((s) => s.request.topLogprobs !== undefined);
      let next: Int32Array;
      let lp: StepWithLogprobs | undefined;
      try {
        if (wantLogprobs) {
          lp = await this.decoder.stepWithLogprobs(rows);
          next = lp.tokens;
        } else next = await this.decoder.step(rows);
      } catch (err) {
        // A step that fails fails the sequences it held; the queue goes on.
        for (const s of batch) this.finish(s, err as Error);
        continue;
      }
      this.stepSizes.push(batch.length);
      batch.forEach((s, i) => {
        if (lp && s.request.topLogprobs !== undefined) s.logprobs.push(tokenLogprob(lp, i, s.request.topLogprobs));
        this.advance(s, next[i]!);
      });
    }
  }

  private admit(): void {
    while (this.waiting.length > 0 && this.live.length < this.opts.maxBatch) {
      const s = this.waiting.shift()!;
      if (s.request.signal?.aborted) {
        s.resolve({ tokenIds: [], text: "", finishReason: "cancelled" });
        continue;
      }
      try {
        this.decoder.open(s.id, s.request.adapter, s.request.promptIds.length + s.request.maxTokens);
      } catch (err) {
        s.reject(err as Error);
        continue;
      }
      this.live.push(s);
    }
  }

  private dropCancelled(): void {
    for (const s of [...this.live]) if (s.request.signal?.aborted) this.finish(s, "cancelled");
  }

  private advance(s: LiveSequence, token: number): void {
    const r = s.request;
    s.generated.push(token);
    s.pending = Int32Array.of(token);
    if (r.stopIds.has(token)) return this.finish(s, "stop");
    const hitStop = s.text.push(token);
    const delta = s.text.takeFinal();
    if (delta && r.onText) r.onText(delta, this.unsent(s));
    if (hitStop) return this.finish(s, "stop");
    if (s.generated.length >= r.maxTokens) this.finish(s, "length");
  }

  private finish(s: LiveSequence, how: FinishReason | Error): void {
    const i = this.live.indexOf(s);
    if (i >= 0) this.live.splice(i, 1);
    this.decoder.close(s.id);
    this.finished[how instanceof Error ? "failed" : how]++;
    if (how instanceof Error) return s.reject(how);
    const rest = s.text.takeRest();
    const unsent = this.unsent(s);
    if ((rest || unsent.length > 0) && s.request.onText && how !== "cancelled") s.request.onText(rest, unsent);
    const result: GenerationResult = { tokenIds: s.generated, text: s.text.text, finishReason: how };
    if (s.request.topLogprobs !== undefined) result.logprobs = s.logprobs;
    s.resolve(result);
  }

  /** the log-probabilities of the tokens since onText last passed them on */
  private unsent(s: LiveSequence): TokenLogprob[] {
    const out = s.logprobs.slice(s.logprobsSent);
    s.logprobsSent = s.logprobs.length;
    return out;
  }
}

function tokenLogprob(lp: StepWithLogprobs, row: number, top: number): TokenLogprob {
  const k = lp.topK;
  const list: { token: number; logprob: number }[] = [];
  for (let j = 0; j < Math.min(top, k); j++) {
    const token = lp.topIds[row * k + j]!;
    if (token >= 0) list.push({ token, logprob: lp.topLogprobs[row * k + j]! });
  }
  return { token: lp.tokens[row]!, logprob: lp.logprobs[row]!, top: list };
}
