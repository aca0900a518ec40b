// Shared by the all-reduce tests: rings of in-process ranks (one NATS connection each), deterministic
// inputs, and the checks every test makes on a result.
import { makeRng } from "../../spec/rng.js";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { TransportKind } from "../../proto/mod.js";
import { connectTransport, type Transport } from "../../worker/allreduce/mod.js";

export interface Ring {
  transports: Transport[];
  close(): Promise<void>;
}

let ringCounter = 0;

/** Connects n ranks of a fresh ring, each with its own NATS connection, as separate processes would. */
export async function startRing(url: string, kind: TransportKind, n: number, window?: number): Promise<Ring> {
  const ring = `test-${process.pid}-${ringCounter++}`;
  const ncs: NatsConnection[] = await Promise.all(Array.from({ length: n }, () => connect({ servers: url })));
  const transports = await Promise.all(
    ncs.map((nc, rank) =>
      connectTransport({ nc, ring, rank, size: n, kind, window, listenHost: "127.0.0.1", advertiseHost: "127.0.0.1" }),
    ),
  );
  return {
    transports,
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      await Promise.all(ncs.map((nc) => nc.close()));
    },
  };
}

/**
 * Rank `rank`'s input, from a seeded generator so a child process can rebuild it. "integers" are small whole numbers, whose fp32 sums are exact in any order;
 * "random" are in [-1, 1), whose sums depend on the order of addition.
 */
export function rankInput(kind: "integers" | "random", rank: number, length: number, seed = 1): Float32Array {
  const next = makeRng(seed * 7919 + rank);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = kind === "integers" ? Math.floor(next() * 201) - 100 : next() * 2 - 1;
  return out;
}

/** Every rank must hold the same bits, equal to the direct sum (exactly, or within fp32 rounding). */
export function assertAllReduced(results: Float32Array[], inputs: Float32Array[], exact: boolean): void {
  const length = inputs[0]!.length;
  for (let r = 0; r < results.length; r++) {
    assert.equal(results[r]!.length, length);
    assert.ok(
      Buffer.compare(bytes(results[r]!), bytes(results[0]!)) === 0,
      `rank ${r} differs from rank 0 in some bit`,
    );
  }
  for (let i = 0; i < length; i++) {
    let sum = 0;
    let magnitude = 0;
    for (const x of inputs) {
      sum += x[i]!;
      magnitude += Math.abs(x[i]!);
    }
    const diff = Math.abs(results[0]![i]! - sum);
    if (exact) {
      assert.equal(results[0]![i], Math.fround(sum), `element ${i}: ${results[0]![i]} != ${sum}`);
    } else {
      // n-1 fp32 additions, each rounding by at most half an ulp of a partial sum.
      const bound = inputs.length * 2 ** -24 * magnitude + 1e-30;
      assert.ok(diff <= bound, `element ${i}: ${results[0]![i]} vs ${sum}, off by ${diff} > ${bound}`);
    }
  }
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
