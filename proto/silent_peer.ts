// The error a worker reports when a ring neighbour went silent, written and read in one place: the worker
// names the silent worker in its step's error, and the coordinator reads the name back to treat that worker
// as lost (not waiting on it to release the job, not scheduling it again until it shows it is alive).

export function silentPeerMessage(peer: string, timeoutMs: number): string {
  return `ring peer ${peer} did not answer within ${timeoutMs / 1000} s`;
}

const SILENT_PEER = /ring peer (\S+) did not answer within /;

/** The worker a silentPeerMessage names, if `message` holds one. */
export function silentPeerOf(message: string): string | undefined {
  return SILENT_PEER.exec(message)?.[1];
}

/**
 * The error a worker reports when a TCP link to a ring neighbour broke (the neighbour's process ended or its
 * host went away), written and read in one place like the silent peer's: the coordinator reads it as a lost
 * worker, not as an error of the job.
 */
export function lostLinkMessage(ring: string, rank: number, which: string): string {
  return `ring ${ring}: rank ${rank} lost its connection ${which}`;
}

const LOST_LINK = /ring \S+: rank \d+ lost its connection /;

/** Whether `message` says the ring broke under the worker: a neighbour went silent or its link broke. */
export function ringBrokeIn(message: string): boolean {
  return SILENT_PEER.test(message) || LOST_LINK.test(message);
}
