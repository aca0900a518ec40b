// One job from data to final model: prepare the rows, form the ring, run the step loop (learning-rate
// schedule, global-batch loss normalisation, evaluation, checkpoints, metrics), save, release the ring.
import { appendFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { readHfConfig } from "../../native/js/hf_config.js";
import {
  DEFAULT_TRANSPORT,
  meanLossByTask,
  mergeTaskSums,
  type CommandReply,
  type CommandRequest,
  type TaskSums,
  type WorkerCommand,
} from "../../proto/mod.js";
import type { LoraSettings } from "../../native/js/addon.js";
import { buildDatasetInThread } from "../data/build_in_thread.js";
import { isBadRecord, type BuiltDataset } from "../data/pipeline.js";
import { countRealTokens, countTargets } from "../data/row.js";
import { BadRecordsError } from "../data/problems.js";
import { evalStopIds, loadEvalPrompts, scoreGenerations } from "../eval/generation_eval.js";
import type { Job, JobStore } from "../jobs/store.js";
import type { JobSpec } from "../job_spec/job_spec.js";
import { parseSpec } from "../job_spec/load.js";
import { loraTargets } from "../job_spec/training_spec.js";
import { checkpointDir, readTrainerState, writeCheckpoint } from "./checkpoint.js";
import { DataOrder, planSteps, shardRange, type StepPlan } from "./plan.js";
import { tokenBatchOfRows } from "./token_batch.js";
import { learningRate, warmupSteps, type LrSchedule } from "./schedule.js";
import { command, WorkerCommandError, WorkerLostError } from "./worker_client.js";

const ASSIGN_TIMEOUT_MS = 10 * 60_000;
const STEP_TIMEOUT_MS = 30 * 60_000;
/** starts of a job before a failing ring gives up: worker losses requeue it from its last checkpoint */
export const MAX_ATTEMPTS = 3;

export class JobCancelled extends Error {
  override name = "JobCancelled";
}

export interface JobEnv {
  nc: NatsConnection;
  store: JobStore;
  log: Logger;
  /** why the job must stop after the current step (a cancel request), or undefined */
  stopReason(id: string): string | undefined;
  /** rejects with WorkerLostError as soon as a worker of the job is lost: pending commands stop waiting */
  interruption(id: string): Promise<never>;
  /** a worker that did not answer: not to be scheduled again until it shows it is alive */
  suspect(worker: string): void;
}

class JobRun {
  private readonly spec: JobSpec;
  private data!: BuiltDataset;
  private plan!: StepPlan;
  private schedule!: LrSchedule;
  private readonly ring: string;
  private readonly metricsFile: string;
  /** the adapters of a lora or hybrid job */
  private readonly lora: LoraSettings | undefined;
  /** hybrid: the last full-parameter step; LoRA from the next one */
  private switchStep = 0;

  constructor(
    private readonly env: JobEnv,
    private job: Job,
    private readonly workers: string[],
  ) {
    this.spec = parseSpec(job.spec, job.source ?? `job ${job.id}`, job.base_dir);
    this.ring = `${job.id}-${Date.now().toString(36)}`;
    this.metricsFile = path.join(job.output, "metrics.jsonl");
    if (this.spec.method !== "full") {
      const l = this.spec.lora ?? { rank: 16, dropout: 0, targets: "all" as const, rslora: false };
      this.lora = {
        rank: l.rank,
        alpha: l.alpha ?? l.rank,
        dropout: l.dropout,
        targets: loraTargets({ ...l, alpha: l.alpha }),
        rslora: l.rslora,
        seed: this.spec.seed,
      };
    }
  }

  private async update(patch: Partial<Job>): Promise<void> {
    this.job = await this.env.store.update(this.job.id, patch);
  }

  private checkStop(): void {
    const why = this.env.stopReason(this.job.id);
    if (why) throw new JobCancelled(why);
  }

  private cmd<C extends WorkerCommand>(
    rank: number,
    name: C,
    body: CommandRequest<C>,
    timeout = STEP_TIMEOUT_MS,
  ): Promise<CommandReply<C>> {
    return command(this.env.nc, this.workers[rank]!, name, body, timeout);
  }

  /** fn on every rank at once; a lost worker interrupts the wait rather than leaving it to time out */
  private all<T>(fn: (rank: number) => Promise<T>): Promise<T[]> {
    return Promise.race([Promise.all(this.workers.map((_, rank) => fn(rank))), this.env.interruption(this.job.id)]);
  }

  async run(): Promise<void> {
    const { spec, job } = this;
    await mkdir(job.output, { recursive: true });
    await this.update({
      status: "preparing",
      message: "reading, tokenizing and packing the data",
      workers: this.workers,
    });
    this.data = await buildDatasetInThread(spec);
    if (this.data.failed) throw new BadRecordsError(this.data.problems.filter(isBadRecord));
    await this.checkVocab();
    this.plan = planSteps(spec, this.data.train.length);
    this.schedule = {
      lr: spec.lr,
      minLr: spec.min_lr,
      kind: spec.schedule,
      warmupSteps: warmupSteps(spec, this.plan.totalSteps),
      totalSteps: this.plan.totalSteps,
    };
    if (spec.method === "hybrid") {
      this.switchStep = Math.round((spec.full_fraction ?? 0.2) * this.plan.totalSteps);
      if (this.switchStep < 1 || this.switchStep >= this.plan.totalSteps)
        throw new Error(
          `full_fraction ${spec.full_fraction ?? 0.2} of ${this.plan.totalSteps} steps leaves no full or no LoRA phase`,
        );
    }
    const resumeDir = job.last_checkpoint?.dir ?? spec.resume_from;
    const startStep = resumeDir ? readTrainerState(resumeDir).step : 0;
    if (startStep > this.plan.totalSteps)
      throw new Error(`checkpoint ${resumeDir} is at step ${startStep}, past the job's ${this.plan.totalSteps} steps`);
    await this.prepareMetrics(startStep);
    this.env.log.info({ job: job.id, rows: this.data.train.length, ...this.plan, startStep }, "job prepared");

    await this.update({
      message: `forming a ring of ${this.workers.length} worker(s)`,
      total_steps: this.plan.totalSteps,
      step: startStep,
    });
    await this.all((rank) =>
      this.cmd(
        rank,
        "assign",
        {
          job: job.id,
          ring: this.ring,
          rank,
          size: this.workers.length,
          transport: spec.transport ?? DEFAULT_TRANSPORT,
          model: resumeDir
            ? { resume: resumeDir }
            : {
                path: spec.model.path,
                init: spec.model.init && { config: spec.model.init.config, seed: spec.model.init.seed },
                adapter: spec.model.adapter,
              },
          optimizer: {
            beta1: spec.betas[0],
            beta2: spec.betas[1],
            eps: spec.eps,
            weight_decay: spec.weight_decay,
            grad_clip: spec.grad_clip,
          },
          lora: spec.method === "lora" ? this.lora : undefined,
        },
        ASSIGN_TIMEOUT_MS,
      ),
    );

    const generation: Record<string, unknown> = { ...(job.generation_eval ?? {}) };
    if (spec.generation_eval && startStep === 0) {
      await this.update({ status: "running", message: "generation eval before training" });
      generation.before = await this.generationEval();
      await this.update({ generation_eval: generation });
    }
    await this.update({ status: "running", message: undefined });
    await this.trainLoop(startStep);
    this.checkStop();

    await this.update({ message: "saving the final model" });
    const finalDir = path.join(job.output, "final");
    const save = (what: "model" | "adapter" | "merged", dir: string, baseModel?: string) =>
      this.cmd(0, "save", {
        job: job.id,
        dir,
        what,
        dtype: spec.save_dtype,
        with_optimizer: false,
        base_model: baseModel,
      });
    const outputs: string[] = [];
    if (spec.method === "full") {
      await save("model", finalDir);
      outputs.push(finalDir);
    } else {
      // The adapter names its base: the input model for plain LoRA on a folder, else the weights it was
      // trained on (the random init, or for hybrid the weights at the switch), saved beside it.
      let base = spec.method === "lora" ? spec.model.path : undefined;
      if (!base) {
        base = path.join(finalDir, "base");
        await save("model", base);
        outputs.push(base);
      }
      await save("adapter", path.join(finalDir, "adapter"), base);
      outputs.push(path.join(finalDir, "adapter"));
    }
    await writeFile(
      path.join(finalDir, "ringtune.json"),
      JSON.stringify(
        { job: job.id, method: spec.method, template: spec.template, tokenizer: spec.tokenizer ?? "model" },
        null,
        2,
      ) + "\n",
    );
    if (spec.generation_eval) {
      await this.update({ message: "generation eval after training" });
      generation.after = await this.generationEval();
      await this.update({ generation_eval: generation });
    }
    if (spec.method !== "full") {
      await this.update({ message: "saving the merged model" });
      await save("merged", path.join(finalDir, "merged")); // last: merging changes the weights in memory
      outputs.push(path.join(finalDir, "merged"));
    }
    await this.update({ status: "completed", message: `outputs: ${outputs.join(", ")}` });
  }

  private async checkVocab(): Promise<void> {
    const configFile = this.spec.model.path
      ? path.join(this.spec.model.path, "config.json")
      : this.spec.model.init!.config;
    const cfg = await readHfConfig(configFile);
    const need = this.data.setup.tokenizer.vocabSize;
    if (need > cfg.native.vocabSize)
      throw new Error(
        `${configFile}: vocab_size ${cfg.native.vocabSize} is smaller than the tokenizer's ${need} tokens (template markers included)`,
      );
  }

  /** Keeps metrics up to a resumed step, so the file tells one story. */
  private async prepareMetrics(startStep: number): Promise<void> {
    if (startStep === 0 || !existsSync(this.metricsFile)) {
      await writeFile(this.metricsFile, "");
      return;
    }
    const kept = (await readFile(this.metricsFile, "utf8"))
      .split("\n")
      .filter((l) => l && (JSON.parse(l) as { step: number }).step <= startStep);
    await writeFile(this.metricsFile, kept.map((l) => l + "\n").join(""));
  }

  private async metric(line: Record<string, unknown>): Promise<void> {
    await appendFile(this.metricsFile, JSON.stringify(line) + "\n");
  }

  private async trainLoop(startStep: number): Promise<void> {
    const { spec, plan, data } = this;
    const order = new DataOrder(data.train.length, spec.seed);
    const pad = data.setup.tokenizer.padId;
    const n = this.workers.length;
    const began = performance.now();
    let tokensSeen = 0;
    let lastEvalStep = -1;
    for (let step = startStep + 1; step <= plan.totalSteps; step++) {
      this.checkStop();
      const stepBegan = performance.now();
      if (this.switchStep > 0 && step === this.switchStep + 1) {
        await this.metric({ step: this.switchStep, event: "switch_to_lora" });
        this.env.log.info({ job: this.job.id, step }, "hybrid: switching to LoRA");
      }
      const lr = learningRate(this.schedule, step);
      const rows = order.rowsOfStep(step, plan.rowsPerStep).map((i) => data.train[i]!);
      const targets = countTargets(rows);
      const checksum = spec.checksum_every > 0 && (step % spec.checksum_every === 0 || step === plan.totalSteps);
      const replies = await this.all((rank) => {
        const [a, b] = shardRange(rows.length, rank, n);
        return this.cmd(rank, "step", {
          job: this.job.id,
          step,
          lr,
          loss_scale: targets > 0 ? 1 / targets : 0,
          micro_batch_rows: spec.micro_batch_rows,
          batch: tokenBatchOfRows(rows.slice(a, b), pad, spec.seq_len),
          checksum,
          enable_lora: this.switchStep > 0 && step === this.switchStep + 1 ? this.lora : undefined,
        });
      });
      const lossSum = replies.reduce((s, r) => s + r.loss_sum!, 0);
      const loss = targets > 0 ? lossSum / targets : NaN;
      const tasks: TaskSums = {};
      for (const r of replies) mergeTaskSums(tasks, r.task_sums);
      if (checksum) {
        const sums = new Set(replies.map((r) => r.checksum));
        if (sums.size !== 1)
          throw new Error(
            `step ${step}: the workers' weights differ (checksums ${[...sums].join(", ")}): the ring is out of sync`,
          );
      }
      const tokens = countRealTokens(rows);
      tokensSeen += tokens;
      const elapsed = (performance.now() - began) / 1000;
      const tokensPerS = tokensSeen / elapsed;
      const eta = ((plan.totalSteps - step) * elapsed) / (step - startStep);
      await this.metric({
        step,
        loss,
        lr,
        grad_norm: replies[0]!.grad_norm,
        targets,
        tokens,
        tokens_per_s: tokensPerS,
        step_ms: performance.now() - stepBegan,
        loss_by_task: meanLossByTask(tasks),
        compute_ms: Math.max(...replies.map((r) => r.compute_ms ?? 0)),
        comm_wait_ms: Math.max(...replies.map((r) => r.comm_wait_ms ?? 0)),
        ...(checksum ? { checksum: replies[0]!.checksum } : {}),
      });
      await this.update({
        step,
        lr,
        train_loss: { first: this.job.train_loss.first ?? loss, last: loss },
        tokens_per_s: tokensPerS,
        eta_s: eta,
      });
      if (spec.eval_every > 0 && step % spec.eval_every === 0) {
        await this.evaluate(step);
        lastEvalStep = step;
      }
      if (spec.save_every > 0 && step % spec.save_every === 0 && step < plan.totalSteps) await this.checkpoint(step);
    }
    if (lastEvalStep !== plan.totalSteps) await this.evaluate(plan.totalSteps);
  }

  private async evaluate(step: number): Promise<void> {
    const val = this.data.val;
    if (val.length === 0) return;
    const n = this.workers.length;
    const pad = this.data.setup.tokenizer.padId;
    const replies = await this.all((rank) => {
      const [a, b] = shardRange(val.length, rank, n);
      return this.cmd(rank, "eval", {
        job: this.job.id,
        batch: tokenBatchOfRows(val.slice(a, b), pad, this.spec.seq_len),
        micro_batch_rows: this.spec.micro_batch_rows,
      });
    });
    const targets = replies.reduce((s, r) => s + r.targets!, 0);
    const valLoss = replies.reduce((s, r) => s + r.loss_sum!, 0) / targets;
    const tasks: TaskSums = {};
    for (const r of replies) mergeTaskSums(tasks, r.task_sums);
    await this.metric({ step, val_loss: valLoss, val_loss_by_task: meanLossByTask(tasks) });
    await this.update({ val_loss: valLoss, val_loss_by_task: meanLossByTask(tasks) });
  }

  private async checkpoint(step: number): Promise<void> {
    const dir = checkpointDir(this.job.output, step);
    await writeCheckpoint(
      dir,
      {
        job: this.job.id,
        step,
        total_steps: this.plan.totalSteps,
        rows_per_step: this.plan.rowsPerStep,
        data_position: step * this.plan.rowsPerStep,
        seed: this.spec.seed,
        train_loss_first: this.job.train_loss.first,
      },
      (tmp) =>
        this.cmd(0, "save", { job: this.job.id, dir: tmp, what: "model", dtype: "F32", with_optimizer: true }).then(
          () => {},
        ),
    );
    await this.update({ last_checkpoint: { step, dir } });
    this.env.log.info({ job: this.job.id, step, dir }, "checkpoint written");
  }

  /** Greedy generation on the held-out prompts, shared out over the ring, scored per task_type. */
  private async generationEval(): Promise<unknown> {
    const setup = this.data.setup;
    const prompts = loadEvalPrompts(this.spec, setup);
    const eos = evalStopIds(setup);
    const n = this.workers.length;
    const parts = await this.all((rank) => {
      const [a, b] = shardRange(prompts.length, rank, n);
      return this.cmd(rank, "generate", {
        job: this.job.id,
        prompts: prompts.slice(a, b).map((p) => Int32Array.from(p.ids)),
        max_new: this.spec.generation_eval!.max_new_tokens,
        eos_ids: eos,
      });
    });
    return scoreGenerations(
      prompts,
      parts.flatMap((p) => p.outputs ?? []),
      setup,
    );
  }

  /** Frees the ring's workers; one that does not answer is presumed gone and not scheduled again yet. */
  async release(): Promise<void> {
    const results = await Promise.allSettled(
      this.workers.map((_, rank) => this.cmd(rank, "release", { job: this.job.id }, 60_000)),
    );
    for (const r of results)
      if (r.status === "rejected" && r.reason instanceof WorkerCommandError && r.reason.unanswered)
        this.env.suspect(r.reason.worker);
  }
}

/** Runs the job to a final status, or back to the queue after a worker loss; never throws. */
export async function runJob(env: JobEnv, job: Job, workers: string[]): Promise<void> {
  let run: JobRun | undefined;
  const attempt = (job.attempts ?? 0) + 1;
  try {
    job = await env.store.update(job.id, { attempts: attempt });
    run = new JobRun(env, job, workers);
    await run.run();
  } catch (err) {
    const e = err as Error;
    if (e instanceof WorkerCommandError && e.unanswered) env.suspect(e.worker);
    const cancelled = e instanceof JobCancelled;
    const ringFailed = e instanceof WorkerLostError || e instanceof WorkerCommandError;
    const latest = env.store.get(job.id)!;
    const where = latest.last_checkpoint
      ? `its checkpoint at step ${latest.last_checkpoint.step}`
      : "the start (no checkpoint yet)";
    if (ringFailed && attempt < MAX_ATTEMPTS) {
      // A worker died or its ring broke: nothing is lost but the steps since the last checkpoint.
      env.log.warn({ job: job.id, err: e }, "ring failed; requeued");
      await env.store
        .update(job.id, {
          status: "queued",
          workers: [],
          message: `${e.message}; resuming from ${where} (attempt ${attempt + 1} of ${MAX_ATTEMPTS})`,
        })
        .catch(() => {});
    } else {
      env.log[cancelled ? "info" : "error"]({ job: job.id, err: e }, cancelled ? "job stopped" : "job failed");
      const suffix = latest.last_checkpoint
        ? ` (last checkpoint: step ${latest.last_checkpoint.step}, ${latest.last_checkpoint.dir})`
        : "";
      await env.store
        .update(job.id, { status: cancelled ? "canceled" : "failed", message: e.message + suffix })
        .catch(() => {});
    }
  } finally {
    await run?.release();
  }
}
