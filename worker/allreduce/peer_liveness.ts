// Liveness of a ring's two neighbours. A peer that is stopped (SIGSTOP, a hung host) keeps its connections
// open, so a wait on it would never end: each rank sends a small keepalive both ways a few times per timeout
// and fails the transport when a neighbour has sent nothing at all for the whole timeout. A neighbour busy
// with a long backward still answers (its event loop runs while native code computes), so only silence counts.
import { silentPeerMessage } from "../../proto/mod.js";
import { PeerTimeoutError } from "./errors.js";

/** The all-reduce tag keepalives travel under; real tags never start with "~". */
export const KEEPALIVE_TAG = "~alive";

/** How long a ring neighbour may stay silent unless the job says otherwise. */
export const DEFAULT_PEER_TIMEOUT_MS = 30_000;

export interface PeerLivenessOptions {
  timeoutMs: number;
  rank: number;
  size: number;
  /** how a rank is named in the error (its worker id, say); default "rank <r>" */
  describePeer?: (rank: number) => string;
}

export class PeerLiveness {
  private lastFromPrev = Date.now();
  private lastFromNext = Date.now();
  private lastTick = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: PeerLivenessOptions) {}

  /** Starts the keepalives (`ping` sends one each way) and the checks; `onSilent` is called once. */
  start(ping: () => void, onSilent: (err: PeerTimeoutError) => void): void {
    const every = Math.max(20, Math.floor(this.o.timeoutMs / 4));
    this.lastFromPrev = this.lastFromNext = this.lastTick = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      // This process itself was not running (its own stop, a long synchronous stretch): what it did not
      // read meanwhile is no fault of the peers, so their clocks restart.
      if (now - this.lastTick > this.o.timeoutMs / 2) this.lastFromPrev = this.lastFromNext = now;
      this.lastTick = now;
      const silent = this.silentPeer(now);
      if (silent !== undefined) {
        this.stop();
        const name = this.o.describePeer?.(silent) ?? `rank ${silent}`;
        onSilent(new PeerTimeoutError(silentPeerMessage(name, this.o.timeoutMs)));
        return;
      }
      try {
        ping();
      } catch {
        // a link that cannot send reports its own failure
      }
    }, every);
    this.timer.unref();
  }

  /** Something (a chunk, an ack, a keepalive) came from rank-1. */
  heardFromPrev(): void {
    this.lastFromPrev = Date.now();
  }

  /** Something came from rank+1. */
  heardFromNext(): void {
    this.lastFromNext = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private silentPeer(now: number): number | undefined {
    const { rank, size, timeoutMs } = this.o;
    if (now - this.lastFromPrev > timeoutMs) return (rank - 1 + size) % size;
    if (now - this.lastFromNext > timeoutMs) return (rank + 1) % size;
    return undefined;
  }
}
