// One active coordinator at a time: the active one holds a lease, a key in a JetStream KV bucket whose
// entries expire `ttlMs` after their last write. The holder rewrites it (revision-checked) every third of
// the TTL; a coordinator that finds the key taken stands by and creates it once it has expired. A holder
// whose renewal fails because the key moved on (it was stopped past its TTL and another took over) has
// lost the lease and must stop writing at once.
import os from "node:os";
import { randomBytes } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";

export const LEASE_BUCKET = "ringtune-coordinator";
const LEASE_KEY = "active";
/** A coordinator silent this long loses the lease to a standby. */
export const DEFAULT_LEASE_TTL_MS = 15_000;

export interface LeaseHolder {
  holder: string;
  host: string;
  pid: number;
  since: string;
}

export class CoordinatorLease {
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  /** called once when the lease is found taken by another coordinator, or expired while unreachable */
  onLost: (reason: string) => void = () => {};

  private constructor(
    private readonly kv: KV,
    readonly holder: LeaseHolder,
    private revision: number,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Waits until this process holds the lease (at once when no coordinator is active), logging once that
   * it stands by and for whom; `cancelled` ends the wait (the process is shutting down) with an error.
   */
  static async acquire(
    nc: NatsConnection,
    log: Logger,
    ttlMs = DEFAULT_LEASE_TTL_MS,
    cancelled: () => boolean = () => false,
  ): Promise<CoordinatorLease> {
    const kv = await openLeaseBucket(nc, ttlMs);
    const holder: LeaseHolder = {
      holder: `${os.hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
      host: os.hostname(),
      pid: process.pid,
      since: new Date().toISOString(),
    };
    let told = false;
    for (;;) {
      if (cancelled()) throw new Error("stopped while standing by for the coordinator lease");
      try {
        const revision = await kv.create(LEASE_KEY, JSON.stringify(holder));
        const lease = new CoordinatorLease(kv, holder, revision, ttlMs, log);
        lease.keepRenewing();
        log.info({ lease: holder.holder }, "holding the coordinator lease: this coordinator is active");
        return lease;
      } catch (err) {
        // Only "the key exists" means another coordinator is active; anything else (no JetStream) is fatal.
        if (!isKeyTaken(err)) throw err;
        if (!told) {
          const current = await kv.get(LEASE_KEY).catch(() => null);
          const who = current?.operation === "PUT" ? current.string() : "(unknown)";
          log.info(
            { active: who, reason: (err as Error).message },
            `standing by: another coordinator holds the lease; taking over within ${ttlMs} ms of its last renewal`,
          );
          told = true;
        }
        await new Promise((r) => setTimeout(r, Math.max(100, ttlMs / 5)));
      }
    }
  }

  private keepRenewing(): void {
    let lastRenewal = Date.now();
    this.timer = setInterval(() => {
      void this.kv.update(LEASE_KEY, JSON.stringify(this.holder), this.revision).then(
        (revision) => {
          this.revision = revision;
          lastRenewal = Date.now();
        },
        async (err: Error) => {
          if (this.released) return;
          // A NATS restart can lose the last renewal or keep one whose reply was lost: the key is then
          // still ours, or gone without anyone else holding it. Either way this coordinator keeps the lease.
          if (isKeyTaken(err) && (await this.reclaim())) {
            lastRenewal = Date.now();
            return;
          }
          // NATS away for a moment is retried; a lease that moved on, or outlived its TTL unrenewed, is gone.
          const unrenewedMs = Date.now() - lastRenewal;
          const taken = isKeyTaken(err);
          if (taken || unrenewedMs > this.ttlMs) {
            this.stopRenewing();
            this.onLost(
              taken
                ? "another coordinator took over the lease"
                : `the lease could not be renewed for ${unrenewedMs} ms (${err.message})`,
            );
          } else {
            this.log.warn({ err }, "coordinator lease renewal failed; retrying");
          }
        },
      );
    }, this.ttlMs / 3);
  }

  /**
   * Whether KV still names this coordinator as the lease holder (false when it cannot tell): asked before
   * overwriting a record whose revision moved on, which only the lease holder may do.
   */
  async stillHeld(): Promise<boolean> {
    if (this.released) return false;
    try {
      const e = await this.kv.get(LEASE_KEY);
      return !!e && e.operation === "PUT" && (JSON.parse(e.string()) as LeaseHolder).holder === this.holder.holder;
    } catch {
      return false;
    }
  }

  /** Whether the lease is (again) this coordinator's: its own entry under another revision, or none. */
  private async reclaim(): Promise<boolean> {
    try {
      const e = await this.kv.get(LEASE_KEY);
      if (e && e.operation === "PUT") {
        if ((JSON.parse(e.string()) as LeaseHolder).holder !== this.holder.holder) return false;
        this.revision = e.revision;
        return true;
      }
      this.revision = await this.kv.create(LEASE_KEY, JSON.stringify(this.holder));
      return true;
    } catch {
      return false;
    }
  }

  private stopRenewing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Gives the lease up (a clean shutdown), so a standby takes over without waiting for it to expire. */
  async release(): Promise<void> {
    this.released = true;
    this.stopRenewing();
    await this.kv.delete(LEASE_KEY, { previousSeq: this.revision }).catch(() => {});
  }
}

async function openLeaseBucket(nc: NatsConnection, ttlMs: number): Promise<KV> {
  const kvm = new Kvm(nc);
  try {
    return await kvm.create(LEASE_BUCKET, { history: 1, ttl: ttlMs });
  } catch {
    // made earlier with another TTL: the bucket's own TTL decides
    return await kvm.open(LEASE_BUCKET);
  }
}

/** JetStream's "wrong last sequence" (error code 10071): the key exists, or moved on from our revision. */
function isKeyTaken(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(e.message ?? "");
}
