// The job records one list reply can carry: a reply is one NATS message, so records that would push it over
// the server's max_payload are left out (the reply says how many) rather than making the reply unsendable.
import type { Job } from "./store.js";

/** Room for the reply's own keys (ok, v, omitted) around the records. */
const ENVELOPE_BYTES = 1024;

export interface ListWithinBudget {
  /** the records sent, oldest first */
  jobs: Job[];
  /** ids of records too large to send even alone */
  tooLarge: string[];
  /** how many records were left out: those too large, then the oldest that did not fit */
  omitted: number;
}

/**
 * Keeps the newest records that fit in `budget` bytes of JSON (msgpack is never larger for these records),
 * returned oldest first. `jobs` come oldest first.
 */
export function listWithinBudget(jobs: Job[], budget: number): ListWithinBudget {
  const room = budget - ENVELOPE_BYTES;
  const kept: Job[] = [];
  const tooLarge: string[] = [];
  let used = 0;
  let omitted = 0;
  for (let i = jobs.length - 1; i >= 0; i--) {
    const job = jobs[i]!;
    const bytes = Buffer.byteLength(JSON.stringify(job)) + 1; // the comma between records
    if (bytes > room) {
      tooLarge.push(job.id);
      omitted++;
    } else if (used + bytes > room) {
      omitted++;
    } else {
      kept.push(job);
      used += bytes;
    }
  }
  return { jobs: kept.reverse(), tooLarge, omitted };
}
