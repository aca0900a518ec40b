// One process of the all-reduce benchmark (bench/allreduce.ts starts it): a ring member, or one end of
// the raw loopback stream the ring is compared with. Commands and timings travel over IPC.
import { createServer, connect as tcpConnect, type Socket } from "node:net";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { TransportKind } from "../proto/mod.js";
import { connectTransport, ringAllReduce } from "../worker/allreduce/mod.js";

export type MemberRole =
  | {
      role: "ring";
      url: string;
      ring: string;
      rank: number;
      size: number;
      kind: TransportKind;
      chunkElements?: number;
      window?: number;
    }
  | { role: "raw-receiver"; url: string; kind: TransportKind; subject: string }
  | {
      role: "raw-sender";
      url: string;
      kind: TransportKind;
      subject: string;
      port?: number;
      messageBytes: number;
      window: number;
    };

/**
 * Parent to child: run one measurement. Child to parent: { ready, port? } once set up, then per command
 * { seconds } (a raw receiver first says { armed } so the parent starts the sender only then).
 */
export interface RunCommand {
  bytes: number;
  iterations: number;
}

export const ROLE_ENV = "RINGTUNE_BENCH_ROLE";

function reply(m: object): void {
  process.send!(m);
}

function onCommand(handle: (c: RunCommand) => Promise<number>): void {
  process.on("message", (c: RunCommand | "exit") => {
    if (c === "exit") process.exit(0);
    handle(c).then(
      (seconds) => reply({ seconds }),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
}

async function ringMember(r: Extract<MemberRole, { role: "ring" }>): Promise<void> {
  const nc = await connect({ servers: r.url });
  const t = await connectTransport({
    nc,
    ring: r.ring,
    rank: r.rank,
    size: r.size,
    kind: r.kind,
    window: r.window,
    listenHost: "127.0.0.1",
    advertiseHost: "127.0.0.1",
  });
  let call = 0;
  onCommand(async ({ bytes, iterations }) => {
    const data = new Float32Array(bytes / 4).fill(r.rank + 1);
    await ringAllReduce(t, data, `warmup-${call++}`, { chunkElements: r.chunkElements }); // also lines the ranks up
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++)
      await ringAllReduce(t, data, `call-${call++}`, { chunkElements: r.chunkElements });
    return Number(process.hrtime.bigint() - start) / 1e9 / iterations;
  });
  reply({ ready: true });
}

/** Counts bytes to `bytes` and reports the time from the first byte to the last. */
async function rawReceiver(r: Extract<MemberRole, { role: "raw-receiver" }>): Promise<void> {
  let expect = 0;
  let got = 0;
  let start = 0n;
  let done: ((s: number) => void) | null = null;
  const count = (n: number) => {
    if (got === 0) start = process.hrtime.bigint();
    got += n;
    if (got >= expect && done) done(Number(process.hrtime.bigint() - start) / 1e9);
  };
  const arm = (bytes: number) =>
    new Promise<number>((resolve) => {
      expect = bytes;
      got = 0;
      done = resolve;
    });
  if (r.kind === "tcp") {
    const server = createServer((s: Socket) => s.on("data", (b) => count(b.length)));
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    onCommand(armed(arm));
    reply({ ready: true, port: (server.address() as { port: number }).port });
  } else {
    const nc = await connect({ servers: r.url });
    let messages = 0;
    nc.subscribe(r.subject, {
      callback: (_err, msg) => {
        count(msg.data.length);
        nc.publish(`${r.subject}.ack`, String(++messages)); // the sender's window, as the transport has
      },
    });
    await nc.flush();
    onCommand(
      armed((bytes) => {
        messages = 0;
        return arm(bytes);
      }),
    );
    reply({ ready: true });
  }
}

/** The receiver tells the parent it is counting before the parent starts the sender. */
function armed(arm: (bytes: number) => Promise<number>) {
  return ({ bytes }: RunCommand) => {
    const done = arm(bytes);
    reply({ armed: true });
    return done;
  };
}

async function rawSender(r: Extract<MemberRole, { role: "raw-sender" }>): Promise<void> {
  const payload = new Uint8Array(r.messageBytes).fill(7);
  if (r.kind === "tcp") {
    const s = await new Promise<Socket>((res) => {
      const c = tcpConnect(r.port!, "127.0.0.1", () => res(c));
    });
    s.setNoDelay(true);
    onCommand(async ({ bytes }) => {
      for (let sent = 0; sent < bytes; sent += payload.length) {
        if (!s.write(payload.subarray(0, Math.min(payload.length, bytes - sent)))) {
          await new Promise((res) => s.once("drain", res));
        }
      }
      return 0;
    });
  } else {
    const nc: NatsConnection = await connect({ servers: r.url });
    let acked = 0;
    let wake: (() => void) | null = null;
    nc.subscribe(`${r.subject}.ack`, {
      callback: (_err, msg) => {
        acked = Math.max(acked, Number(msg.string()));
        wake?.();
      },
    });
    await nc.flush();
    onCommand(async ({ bytes }) => {
      acked = 0;
      let sent = 0;
      for (let off = 0; off < bytes; off += payload.length) {
        while (sent - acked >= r.window) await new Promise<void>((res) => (wake = res));
        nc.publish(r.subject, payload.subarray(0, Math.min(payload.length, bytes - off)));
        sent++;
      }
      await nc.flush();
      return 0;
    });
  }
  reply({ ready: true });
}

const raw = process.env[ROLE_ENV];
if (raw && process.send) {
  const role = JSON.parse(raw) as MemberRole;
  const start =
    role.role === "ring" ? ringMember(role) : role.role === "raw-receiver" ? rawReceiver(role) : rawSender(role);
  start.catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
