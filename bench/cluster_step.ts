// The share of a training step spent waiting on communication: the native-core bench model (vocab 32000,
// hidden 512, 8 layers) trained by 2 worker processes over a real nats-server, one row of 512 tokens per
// worker per step, against the same job on 1 worker measured in the same run.
//   node dist/bench/cluster_step.js [--steps N] [--transport tcp|nats]
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readMetrics, TestCluster } from "../test/helpers/cluster.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
const steps = Number(args[args.indexOf("--steps") + 1]) || 6;
const transport = args.includes("--transport") ? args[args.indexOf("--transport") + 1] : "tcp";

function fixture(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-bench-"));
  writeFileSync(
    path.join(dir, "model.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: 32000,
      hidden_size: 512,
      intermediate_size: 1408,
      num_hidden_layers: 8,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      max_position_embeddings: 1024,
      tie_word_embeddings: false,
      initializer_range: 0.02,
    }),
  );
  const words = ["alpha", "beta", "gamma", "delta", "ring", "token", "tensor", "worker", "batch", "step"];
  const lines = Array.from({ length: 64 }, (_, i) =>
    JSON.stringify({ text: Array.from({ length: 120 }, (_, k) => words[(i * 7 + k * 3) % words.length]).join(" ") }),
  );
  writeFileSync(path.join(dir, "text.jsonl"), lines.join("\n") + "\n");
  return dir;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = fixture();
  // Workers as separate processes with one thread each: on a 2-core machine that is one core per worker.
  const cluster = await TestCluster.start(0);
  const procs: ChildProcess[] = [];
  for (let i = 0; i < 2; i++) {
    procs.push(
      spawn(
        process.execPath,
        [
          path.join(root, "dist/cli/ringtune.js"),
          "worker",
          "--nats",
          cluster.server.url,
          "--insecure",
          "--id",
          `bench-${i}`,
          // the job's files are in a temp folder
          "--data-root",
          os.tmpdir(),
          "--output-root",
          os.tmpdir(),
        ],
        {
          env: { ...process.env, OMP_NUM_THREADS: "1" },
          stdio: "ignore",
        },
      ),
    );
  }
  try {
    await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 2, "the worker processes to register");
    const spec = {
      model: { init: { config: "model.json", seed: 0 } },
      tokenizer: "byte",
      template: "none",
      data: [{ path: "text.jsonl", format: "text" }],
      seq_len: 512,
      micro_batch_rows: 1,
      max_steps: steps,
      lr: 1e-4,
      checksum_every: 0,
      transport,
    };
    const results: Record<number, { stepMs: number; commMs: number; computeMs: number }> = {};
    for (const workers of [1, 2]) {
      // one row per worker per step: each worker does what the single-node bench does
      const rec = await cluster.run({ ...spec, workers, global_batch_rows: workers, output: `run-${workers}` }, dir);
      const m = readMetrics(rec.output)
        .filter((l) => l.loss !== undefined)
        .slice(1) as unknown as { step_ms: number; comm_wait_ms: number; compute_ms: number }[];
      results[workers] = {
        stepMs: median(m.map((l) => l.step_ms)),
        commMs: median(m.map((l) => l.comm_wait_ms)),
        computeMs: median(m.map((l) => l.compute_ms)),
      };
    }
    const one = results[1]!,
      two = results[2]!;
    console.log(
      `machine: ${os.cpus()[0]?.model.trim()}, ${os.cpus().length} cores; workers: separate processes, OMP_NUM_THREADS=1; transport ${transport}`,
    );
    console.log(
      `model: vocab 32000, hidden 512, intermediate 1408, 8 layers, 8/2 heads; 1 row x 512 tokens per worker per step; median of ${steps - 1} steps`,
    );
    console.log(`1 worker : step ${one.stepMs.toFixed(0)} ms (compute ${one.computeMs.toFixed(0)} ms)`);
    console.log(
      `2 workers: step ${two.stepMs.toFixed(0)} ms (compute ${two.computeMs.toFixed(0)} ms, waiting on the all-reduce after the backward ${two.commMs.toFixed(0)} ms)`,
    );
    console.log(
      `share of the 2-worker step spent waiting on communication: ${((100 * two.commMs) / two.stepMs).toFixed(1)}%`,
    );
    console.log(
      `2-worker step time / 1-worker step time: ${(two.stepMs / one.stepMs).toFixed(2)} (1.00 = perfect weak scaling)`,
    );
    console.log(
      JSON.stringify({
        bench: "cluster_step",
        transport,
        one_worker_step_ms: one.stepMs,
        two_worker_step_ms: two.stepMs,
        comm_wait_ms: two.commMs,
        comm_share: two.commMs / two.stepMs,
      }),
    );
  } finally {
    for (const p of procs) p.kill("SIGTERM");
    await cluster.stop();
  }
}

await main();
