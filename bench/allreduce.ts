// All-reduce bus bandwidth (algbw x 2(n-1)/n) per transport, ring size and buffer size, each beside the
// raw loopback throughput of the same transport measured in the same run (a plain stream between two
// processes; for NATS a publisher/subscriber pair through the same server), so the ratio says how much
// of what the transport can carry the ring achieves. Every rank and stream end is its own process. The
// raw stream sends messages of the ring's chunk size, and is measured again just before each ring size,
// so that on a shared, noisy machine a ratio compares figures taken minutes, not seconds, apart.
//
//   node dist/bench/allreduce.js [--quick] [--transports tcp,nats] [--ranks 2,3,4] [--sizes-mb 4,16,64,256]
//                                [--chunk ELEMENTS] [--window CHUNKS]
import { fork, type ChildProcess } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { TransportKind } from "../proto/mod.js";
import { DEFAULT_CHUNK_ELEMENTS } from "../worker/allreduce/mod.js";
import { startNatsServer } from "../test/helpers/nats_server.js";
import { ROLE_ENV, type MemberRole, type RunCommand } from "./allreduce_member.js";

const MB = 1024 * 1024;
const memberScript = fileURLToPath(new URL("./allreduce_member.js", import.meta.url));

interface Member {
  child: ChildProcess;
  next(): Promise<{ ready?: boolean; armed?: boolean; port?: number; seconds?: number }>;
}

function startMember(role: MemberRole): Member {
  const child = fork(memberScript, [], {
    env: { ...process.env, [ROLE_ENV]: JSON.stringify(role) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const inbox: object[] = [];
  const waiters: Array<(m: object) => void> = [];
  child.on("message", (m: object) => (waiters.length ? waiters.shift()!(m) : inbox.push(m)));
  const died = new Promise<never>((_, reject) =>
    child.on(
      "exit",
      (code) => code !== 0 && reject(new Error(`benchmark process (${role.role}) exited with code ${code}`)),
    ),
  );
  died.catch(() => {});
  return {
    child,
    next: () =>
      Promise.race([new Promise<object>((res) => (inbox.length ? res(inbox.shift()!) : waiters.push(res))), died]),
  };
}

function run(members: Member[], command: RunCommand): Promise<number[]> {
  for (const m of members) m.child.send(command);
  return Promise.all(members.map(async (m) => (await m.next()).seconds!));
}

async function stopAll(members: Member[]): Promise<void> {
  await Promise.all(
    members.map(
      (m) =>
        new Promise<void>((res) =>
          m.child.exitCode !== null ? res() : (m.child.once("exit", () => res()), m.child.send("exit")),
        ),
    ),
  );
}

/** Raw loopback MB/s of one transport: `bytes` streamed once as warm-up, then measured. */
async function rawThroughput(
  url: string,
  kind: TransportKind,
  bytes: number,
  messageBytes: number,
  window: number,
): Promise<number> {
  const subject = `bench.raw.${process.pid}`;
  const receiver = startMember({ role: "raw-receiver", url, kind, subject });
  const { port } = await receiver.next();
  const sender = startMember({ role: "raw-sender", url, kind, subject, port, messageBytes, window });
  await sender.next();
  const stream = async (command: RunCommand) => {
    receiver.child.send(command);
    await receiver.next(); // armed
    sender.child.send(command);
    const [seconds] = await Promise.all([receiver.next(), sender.next()]);
    return seconds.seconds!;
  };
  try {
    await stream({ bytes: Math.min(bytes, 64 * MB), iterations: 1 }); // warm-up
    return bytes / MB / (await stream({ bytes, iterations: 1 }));
  } finally {
    await stopAll([receiver, sender]);
  }
}

interface Row {
  kind: TransportKind;
  n: number;
  mb: number;
  seconds: number;
  algbw: number;
  busbw: number;
}

async function ringRows(
  url: string,
  kind: TransportKind,
  n: number,
  sizesMb: number[],
  o: { chunk?: number; window?: number },
): Promise<Row[]> {
  const ring = `bench-${kind}-${n}-${process.pid}`;
  const members = Array.from({ length: n }, (_, rank) =>
    startMember({ role: "ring", url, ring, rank, size: n, kind, chunkElements: o.chunk, window: o.window }),
  );
  try {
    await Promise.all(members.map((m) => m.next()));
    const rows: Row[] = [];
    for (const mb of sizesMb) {
      const iterations = Math.max(1, Math.min(8, Math.floor(64 / mb)));
      // The slowest rank's time is the call's time.
      const seconds = Math.max(...(await run(members, { bytes: mb * MB, iterations })));
      const algbw = mb / seconds;
      rows.push({ kind, n, mb, seconds, algbw, busbw: (algbw * 2 * (n - 1)) / n });
    }
    return rows;
  } finally {
    await stopAll(members);
  }
}

function list(s: string): number[] {
  return s.split(",").map(Number);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      transports: { type: "string", default: "tcp,nats" },
      ranks: { type: "string", default: "2,3,4" },
      "sizes-mb": { type: "string" },
      chunk: { type: "string" },
      window: { type: "string" },
    },
  });
  const sizesMb = list(values["sizes-mb"] ?? (values.quick ? "4,32" : "4,16,64,256"));
  const ranks = list(values.ranks!);
  const kinds = values.transports!.split(",") as TransportKind[];
  const chunk = values.chunk ? Number(values.chunk) : undefined;
  const window = values.window ? Number(values.window) : undefined;

  const cpu = cpus();
  console.log(
    `machine: ${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  );
  console.log(
    `sizes ${sizesMb.join(",")} MB of fp32; ranks ${ranks.join(",")}; every rank and stream end a separate process on this machine`,
  );
  const server = await startNatsServer();
  const summary: Array<{ kind: TransportKind; raw: number; rows: Row[] }> = [];
  try {
    for (const kind of kinds) {
      // The ring's chunk size; NATS messages must also fit max_payload (1 MiB by default).
      const messageBytes = Math.min((chunk ?? DEFAULT_CHUNK_ELEMENTS) * 4, kind === "nats" ? MB - 1024 : Infinity);
      const rawBytes = kind === "nats" ? 256 * MB : 1024 * MB;
      console.log(
        `\n${kind}: raw = loopback stream of ${messageBytes} B messages${kind === "nats" ? ", window 8" : ""}, measured before each ring size`,
      );
      console.log("  ranks     size    time/call    algbw MB/s   busbw MB/s    raw MB/s   busbw/raw");
      const rows: Row[] = [];
      const raws: number[] = [];
      for (const n of ranks) {
        const raw = await rawThroughput(server.url, kind, rawBytes, messageBytes, 8);
        raws.push(raw);
        for (const r of await ringRows(server.url, kind, n, sizesMb, { chunk, window })) {
          rows.push(r);
          console.log(
            `  ${String(n).padStart(5)} ${String(r.mb).padStart(5)} MB ${(r.seconds * 1000).toFixed(1).padStart(9)} ms` +
              `${r.algbw.toFixed(0).padStart(14)} ${r.busbw.toFixed(0).padStart(12)} ${raw.toFixed(0).padStart(11)} ${(r.busbw / raw).toFixed(2).padStart(11)}`,
          );
        }
      }
      const raw = Math.max(...raws);
      summary.push({ kind, raw, rows });
    }
  } finally {
    await server.stop();
  }
  if (summary.length === 2) {
    const [a, b] = summary as [(typeof summary)[0], (typeof summary)[0]];
    const wins = a.rows.filter((r, i) => r.busbw > b.rows[i]!.busbw).length;
    const geo = Math.exp(a.rows.reduce((s, r, i) => s + Math.log(r.busbw / b.rows[i]!.busbw), 0) / a.rows.length);
    const faster = geo >= 1 ? a.kind : b.kind;
    console.log(
      `\nfaster: ${faster} (${a.kind} beats ${b.kind} in ${wins} of ${a.rows.length} cases; ` +
        `geometric mean busbw ${a.kind}/${b.kind} = ${geo.toFixed(2)})`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
