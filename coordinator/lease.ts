// One active coordinator at a time: the active one holds a lease, a key in a JetStream KV bucket whose
// entries expire `ttlMs` after their last write. The holder rewrites it (revision-checked) every third of
// the TTL; a coordinator that finds the key taken stands by and creates it once it has expired. A holder
// whose renewal fails because the key moved on (it was stopped past its TTL and another took over) has
// lost the lease and must stop writing at once. A NATS outage alone loses nothing: unanswered renewals are
// retried, and the lease is lost only when KV answers that another coordinator holds it.
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
    /** after KV failed to answer (a NATS outage): the holder gets a TTL to renew before this one may take over */
    let notBefore = 0;
    for (;;) {
      if (cancelled()) throw new Error("stopped while standing by for the coordinator lease");
      if (Date.now() < notBefore) {
        await new Promise((r) => setTimeout(r, Math.max(100, ttlMs / 5)));
        continue;
      }
      try {
        const revision = await kv.create(LEASE_KEY, JSON.stringify(holder));
        const lease = new CoordinatorLease(kv, holder, revision, ttlMs, log);
        lease.keepRenewing();
        log.info({ lease: holder.holder }, "holding the coordinator lease: this coordinator is active");
        return lease;
      } catch (err) {
        // "The key exists": another coordinator is active. The bucket opened, so anything else is NATS or
        // JetStream away for a while: the wait goes on, and the holder's TTL counts from when it is back.
        // JetStream that never answered is missing (fatal); once it has, it is restarting with its server.
        if (!told && noJetStream(err)) throw err;
        if (!isKeyTaken(err)) {
          log.warn({ err }, "standing by: the lease bucket did not answer; retrying");
          notBefore = Date.now() + ttlMs;
          continue;
        }
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
    let renewing = false;
    this.timer = setInterval(() => {
      // A renewal whose reply is late (sent into an outage) is waited for, never overtaken by another.
      if (renewing) return;
      renewing = true;
      void this.kv
        .update(LEASE_KEY, JSON.stringify(this.holder), this.revision)
        .then(
          (revision) => {
            this.revision = revision;
            lastRenewal = Date.now();
          },
          async (err: Error) => {
            if (this.released) return;
            // A NATS outage can lose the last renewal, keep one whose reply was lost, or outlast the key's
            // TTL: the key is then still ours under another revision, or gone without anyone else holding
            // it. Either way this coordinator keeps the lease; only another holder takes it away.
            const owner = await this.reclaim();
            if (owner === "ours") {
              lastRenewal = Date.now();
              return;
            }
            // Unanswered (NATS away, or JetStream still recovering after a restart) says nothing about the
            // lease: retried, however long. A standby can only take over once the key has expired, and the
            // next answer then says so.
            if (owner === "theirs") {
              this.stopRenewing();
              this.onLost("another coordinator took over the lease");
            } else {
              this.log.warn(
                { err, unrenewedMs: Date.now() - lastRenewal },
                "coordinator lease renewal failed; retrying",
              );
            }
          },
        )
        .finally(() => (renewing = false));
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

  /**
   * Whose the lease is now: this coordinator's (its own entry under another revision, or none, which it
   * creates again), another's, or unknown (KV did not answer).
   */
  private async reclaim(): Promise<"ours" | "theirs" | "unknown"> {
    try {
      const e = await this.kv.get(LEASE_KEY);
      if (e && e.operation === "PUT") {
        if ((JSON.parse(e.string()) as LeaseHolder).holder !== this.holder.holder) return "theirs";
        this.revision = e.revision;
        return "ours";
      }
      this.revision = await this.kv.create(LEASE_KEY, JSON.stringify(this.holder));
      return "ours";
    } catch (err) {
      // created by another between the read and the create
      return isKeyTaken(err) ? "theirs" : "unknown";
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

/** A server without JetStream answers no one on its API subjects: that does not pass with waiting. */
function noJetStream(err: unknown): boolean {
  const e = err as Error;
  return e.name === "JetStreamNotEnabled" || /jetstream is not enabled|no responders/i.test(e.message ?? "");
}
