// The workers of one job as a ring: rank r is workers[r]. Commands go to one rank or to every rank at once;
// a lost worker interrupts a wait on the whole ring rather than leaving it to time out.
import { errors, type NatsConnection } from "@nats-io/transport-node";
import type { CommandReply, CommandRequest, WorkerCommand } from "../../proto/mod.js";
import { command, WorkerCommandError } from "./worker_client.js";

const STEP_TIMEOUT_MS = 30 * 60_000;
const RELEASE_TIMEOUT_MS = 60_000;
/**
 * A release unanswered this long is sent again. A worker killed a moment ago may still have its subscription
 * on the NATS server (the server has not yet read the dead connection's end), and a request delivered to it
 * then is lost for good: only asking again gets the server's "no responders" once it has dropped the worker.
 * A live worker that takes longer answers one of the copies (a release of a released job is a no-op).
 */
const RELEASE_RETRY_MS = 500;

export class Ring {
  constructor(
    private readonly nc: NatsConnection,
    readonly workers: readonly string[],
    /** rejects as soon as a worker of the ring is lost */
    private readonly interruption: () => Promise<never>,
  ) {}

  get size(): number {
    return this.workers.length;
  }

  /**
   * One command to one rank, ended early when any worker of the ring is lost: a worker killed or stopped
   * after it took the command (a checkpoint write, say) never answers, and the wait would last the timeout.
   */
  send<C extends WorkerCommand>(
    rank: number,
    name: C,
    body: CommandRequest<C>,
    timeoutMs = STEP_TIMEOUT_MS,
  ): Promise<CommandReply<C>> {
    return Promise.race([command(this.nc, this.workers[rank]!, name, body, timeoutMs), this.interruption()]);
  }

  /** fn on every rank at once, the replies in rank order. */
  all<T>(fn: (rank: number) => Promise<T>): Promise<T[]> {
    return Promise.race([Promise.all(this.workers.map((_, rank) => fn(rank))), this.interruption()]);
  }

  /**
   * Frees the workers of `job`; returns those that did not answer (presumed gone). A worker known to be lost
   * is not asked: a hung one would hold up the requeue for the whole timeout.
   */
  async release(job: string, lost?: string): Promise<string[]> {
    const results = await Promise.allSettled(
      this.workers.map((worker) =>
        // not raced with the interruption: a release follows the loss that caused it
        worker === lost ? Promise.resolve() : this.releaseOne(worker, job),
      ),
    );
    return results.flatMap((r) =>
      r.status === "rejected" && r.reason instanceof WorkerCommandError && r.reason.unanswered ? [r.reason.worker] : [],
    );
  }

  /** Asks `worker` to release `job` until it answers, the server says it is gone, or the timeout passes. */
  private async releaseOne(worker: string, job: string): Promise<void> {
    const deadline = Date.now() + RELEASE_TIMEOUT_MS;
    for (;;) {
      const wait = Math.min(RELEASE_RETRY_MS, deadline - Date.now());
      try {
        await command(this.nc, worker, "release", { job }, wait);
        return;
      } catch (err) {
        const unansweredInTime =
          err instanceof WorkerCommandError && err.unanswered && err.cause instanceof errors.TimeoutError;
        if (!unansweredInTime || Date.now() >= deadline) throw err;
      }
    }
  }
}
