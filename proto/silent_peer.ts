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
