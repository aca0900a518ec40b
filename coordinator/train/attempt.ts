// One attempt at a job (one start), from data to final model: prepare the rows, form the ring, run the step
// loop, save the outputs. The pieces live beside it (data, plan, LoRA, ring, step results, metrics,
// checkpoints, final outputs); this file only puts them in order.
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { makeOutputDir, writeOutputFile } from "../../files/output_files.js";
import { claimOutput } from "../jobs/output_owner.js";
import { pathKeys } from "../jobs/intake.js";
import { namingKey } from "../../files/input_files.js";
import { HeldFolder } from "../../files/held_folder.js";
import { holdFolderBeneath } from "../../files/folder_beneath.js";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { LoraSettings } from "../../native/js/addon.js";
import {
  checkpointDir,
  checkpointTempDir,
  DEFAULT_TRANSPORT,
  evalAnswersFile,
  finalLayout,
  finalLayoutAt,
  finalStagingDir,
  metricsFile,
  sequenceGroupOf,
  type GenerationEval,
} from "../../proto/mod.js";
import type { PrepareProgress, PreparedDataset } from "../../data/streamed_pipeline.js";
import { countRealTokens, countTargets } from "../../data/rows/row.js";
import { countPairs } from "../../data/preference/pack_pairs.js";
import type { Job, JobStore } from "../jobs/store.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { parseSpec } from "../../spec/load.js";
import { workerRange } from "../../spec/workers_spec.js";
import { assignRequest, ringMixesDevices } from "./assign.js";
import { chooseDataPlane, describeSequenceDataPlanes, type DataPlaneChoice } from "./data_plane.js";
import { pruneCheckpoints, readTrainerState, writeCheckpoint } from "./checkpoint.js";
import { generationEval, validationLoss } from "./evaluate.js";
import { recordText, saveFinalModel, saveMergedModel, type FinalPaths } from "./final_outputs.js";
import { publishFinal, stageFinal } from "./final_swap.js";
import { hybridSwitchStep, loraSettingsOf } from "../../spec/lora_plan.js";
import { MetricsFile, type MetricLine } from "./metrics_file.js";
import { writeLossPlot } from "../../plot/write_loss_plot.js";
import { DataOrder, planSteps, type StepPlan } from "../../spec/step_plan.js";
import { prepareData } from "./prepare_data.js";
import { Ring } from "./ring.js";
import { learningRate, warmupSteps, type LrSchedule } from "./schedule.js";
import { combineStepReplies } from "./step_results.js";
import { prefLine } from "./pref_metrics.js";
import { rankBatch } from "./rank_batch.js";
import {
  computeReference,
  loadStoredReference,
  needsStoredReference,
  rankReference,
  storedReferenceFile,
} from "./reference_pass.js";
import { writeReference, type PairReference } from "../../data/preference/reference_store.js";
import type { RunPhase } from "./failure_policy.js";

const ASSIGN_TIMEOUT_MS = 10 * 60_000;
/** ring formations kept in a job record (the most recent) */
const MAX_RING_SIZES = 256;

export class JobCancelled extends Error {
  override name = "JobCancelled";
}

/**
 * The coordinator running the job is stopping (SIGTERM, cluster-down): what the job was doing ends at once
 * (a data preparation's threads too), and its record stays as it is for the next coordinator to resume.
 */
export class CoordinatorStopping extends Error {
  override name = "CoordinatorStopping";
}

/** An elastic job leaves its ring at a checkpoint to re-form it with the idle workers that appeared. */
export class RingGrows extends Error {
  override name = "RingGrows";
  constructor(
    readonly step: number,
    readonly from: number,
  ) {
    super(`idle workers appeared: growing the ring of ${from} worker(s) from its checkpoint at step ${step}`);
  }
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
  /** the device a worker registered, as deviceLabel() names it ("cuda-emu (...)"), for the job record */
  deviceOf?(worker: string): string | undefined;
  /** what a worker said it is doing in its last heartbeat ("loading weights 37%"), if anything */
  activity?(worker: string): string | undefined;
  /** how often the job's message follows those activities while the ring forms (they change with heartbeats) */
  activityRefreshMs?: number;
  /** sees every metrics.jsonl line of the job as it is written */
  onMetric?(job: string, line: MetricLine): void;
  /** how many times the coordinator lost its NATS connection so far */
  outages?(): number;
  /** resolves once the NATS connection is up (at once when it is) */
  connectedAgain?(): Promise<void>;
  /** whether this coordinator still holds the lease (asked before overwriting a record that moved on) */
  holdsLease?(): Promise<boolean>;
  /** how many idle workers could join the job's ring now (an elastic job grows at a checkpoint when some can) */
  idleWorkersFor?(job: Job): number;
}

/** How often the job's message is refreshed with its workers' activities while the ring forms, by default. */
const ACTIVITY_REFRESH_MS = 500;

export class JobAttempt {
  private readonly spec: JobSpec;
  private readonly ring: Ring;
  /** a NATS subject token naming this formation of the ring */
  private readonly ringId: string;
  /** handed to this ring's members only: their TCP edges accept no peer without it */
  private readonly ringSecret = Uint8Array.from(randomBytes(32));
  private metrics: MetricsFile;
  /** the output folder, held from the start of the run: metrics and plots are written through it */
  private outputFolder: HeldFolder | undefined;
  /** the adapters of a lora or hybrid job */
  private readonly lora: LoraSettings | undefined;
  private data!: PreparedDataset;
  /** full or hybrid preference training with a reference: the initial model's log-probabilities of the pairs */
  private reference: PairReference | undefined;
  private plan!: StepPlan;
  private schedule!: LrSchedule;
  /** hybrid: the last full-parameter step; LoRA from the next one (0: no switch) */
  private switchStep = 0;
  /** how far this start got: an error a worker answers while the ring forms is the job's own (its model) */
  phase: RunPhase = "preparing";

  constructor(
    private readonly env: JobEnv,
    private job: Job,
    workers: string[],
    /** the spec as the coordinator checked it (confined, datasets resolved); parsed here when not given */
    spec?: JobSpec,
  ) {
    this.spec = spec ?? parseSpec(job.spec, job.source ?? `job ${job.id}`, job.base_dir);
    this.ring = new Ring(env.nc, workers, () => env.interruption(job.id));
    this.ringId = `${job.id}-${Date.now().toString(36)}`;
    this.metrics = new MetricsFile(metricsFile(job.output), (line) => env.onMetric?.(job.id, line));
    this.lora = loraSettingsOf(this.spec);
  }

  private async update(patch: Partial<Job>): Promise<void> {
    this.job = await this.env.store.update(this.job.id, patch);
  }

  private checkStop(): void {
    const why = this.env.stopReason(this.job.id);
    if (why) throw new JobCancelled(why);
  }

  /** Closes the token cache the rows were read from (the job is over or goes back to the queue). */
  /** temporary folders of checkpoints and final saves whose write failed: removed once the ring is released */
  private readonly unfinishedCheckpoints: string[] = [];

  close(): void {
    (this.data as PreparedDataset | undefined)?.close();
    this.outputFolder?.close();
    this.outputFolder = undefined;
  }

  async run(): Promise<void> {
    await this.claimOutput();
    const { resumeDir, startStep } = await this.prepare();
    await this.formRing(resumeDir, startStep);
    const { spec, job } = this;
    this.phase = "training";
    const generation: GenerationEval = { ...(job.generation_eval ?? {}) };
    if (spec.generation_eval && startStep === 0) {
      await this.update({ status: "running", message: "generation eval before training" });
      generation.before = (await generationEval(this.ring, job.id, spec, this.data.setup)).report;
      await this.update({ generation_eval: generation });
    }
    await this.update({ status: "running", message: undefined });
    await this.trainLoop(startStep);
    this.checkStop();
    await this.saveOutputs(generation);
  }

  /** The output folder made, claimed for this job (or taken over as the spec allows), held open, its metrics file. */
  private async claimOutput(): Promise<void> {
    const { spec, job } = this;
    await makeOutputDir(job.output);
    const { removed } = await claimOutput(job.output, job.id, {
      overwrite: spec.overwrite_output,
      resumeFrom: spec.resume_from,
    });
    this.outputFolder = HeldFolder.open(job.output);
    this.metrics = new MetricsFile(metricsFile(this.outputFolder.path("")), (line) =>
      this.env.onMetric?.(job.id, line),
    );
    if (removed.length > 0)
      this.env.log.warn(
        { job: job.id, output: job.output, removed },
        "overwrite_output: removed the earlier job's outputs",
      );
  }

  /** The data read, tokenized and packed (a cancel stops it at once), the step plan, the step to start from. */
  private async prepare(): Promise<{ resumeDir: string | undefined; startStep: number }> {
    const { spec, job } = this;
    await this.update({
      status: "preparing",
      message: "reading, tokenizing and packing the data",
      workers: [...this.ring.workers],
      worker_devices: this.ring.workers.map((w) => this.env.deviceOf?.(w) ?? "unknown"),
    });
    let progressWrites = Promise.resolve();
    let lastProgress = 0;
    const onProgress = (p: PrepareProgress) => {
      // At most one job record write a second, queued so a late one never overwrites what follows it.
      if (Date.now() - lastProgress < 1000) return;
      lastProgress = Date.now();
      progressWrites = progressWrites.then(() => this.update({ message: preparingMessage(p) })).catch(() => {});
    };
    // A cancel (or a lost worker) stops the preparation at once: its threads end, whatever they were reading.
    const stop = new AbortController();
    const stopOnInterruption = (err: unknown) => stop.abort(err);
    void this.env.interruption(job.id).catch(stopOnInterruption);
    try {
      this.data = await prepareData(spec, onProgress, stop.signal);
    } catch (err) {
      throw namingKey(err, pathKeys(spec));
    } finally {
      await progressWrites;
    }
    this.checkStop();
    this.plan = planSteps(spec, this.data.train.length);
    const { totalSteps } = this.plan;
    this.schedule = {
      lr: spec.lr,
      minLr: spec.min_lr,
      kind: spec.schedule,
      warmupSteps: warmupSteps(spec, totalSteps),
      totalSteps,
    };
    this.switchStep = hybridSwitchStep(spec, totalSteps);
    const resumeDir = job.last_checkpoint?.dir ?? spec.resume_from;
    const startStep = resumeDir ? readTrainerState(resumeDir).step : 0;
    if (startStep > totalSteps)
      throw new Error(`checkpoint ${resumeDir} is at step ${startStep}, past the job's ${totalSteps} steps`);
    await this.metrics.startAt(startStep);
    this.env.log.info({ job: job.id, rows: this.data.train.length, ...this.plan, startStep }, "job prepared");
    return { resumeDir, startStep };
  }

  /** The data plane chosen, the reference log-probabilities where the job needs them, the ring assigned. */
  private async formRing(resumeDir: string | undefined, startStep: number): Promise<void> {
    const { spec, job } = this;
    await this.update({
      message: `forming a ring of ${this.ring.size} worker(s)`,
      total_steps: this.plan.totalSteps,
      step: startStep,
    });
    this.phase = "forming";
    const plane = await chooseDataPlane(this.ring, {
      job: job.id,
      ringId: this.ringId,
      ringSecret: this.ringSecret,
      transport: spec.transport ?? DEFAULT_TRANSPORT,
      deviceOf: this.env.deviceOf,
      sequenceParallel: spec.sequence_parallel,
    });
    const groupPlanes = plane.sequenceDescriptions;
    this.env.log.info(
      { job: job.id, ring: this.ringId, dataPlane: plane.description, sequenceDataPlanes: groupPlanes },
      "data plane",
    );
    const groupsLine = groupPlanes ? `, sequence-parallel groups ${describeSequenceDataPlanes(groupPlanes)}` : "";
    await this.update({
      message: `forming a ring of ${this.ring.size} worker(s), data plane ${plane.description}${groupsLine}`,
    });
    const referenceFile = needsStoredReference(spec) ? storedReferenceFile(spec, this.data) : undefined;
    this.reference = referenceFile ? loadStoredReference(referenceFile, this.data) : undefined;
    if (referenceFile && !this.reference) {
      // The reference is the initial model: a resumed ring first holds the initial weights for the pass,
      // then the checkpoint's.
      // The pass only reads (no gradients to reduce): host staging, so the ring's NCCL id serves one communicator.
      await this.assignRing(undefined, resumeDir ? `${this.ringId}-ref` : this.ringId, resumeDir ? undefined : plane);
      this.reference = await this.referencePass(referenceFile, startStep);
      if (resumeDir) await this.assignRing(resumeDir, this.ringId, plane);
    } else {
      await this.assignRing(resumeDir, this.ringId, plane);
      if (this.reference)
        await this.metrics.append({
          step: startStep,
          event: "reference_logps",
          from_cache: true,
          pairs: pairCount(this.reference),
        });
    }
    await this.recordRingSize(startStep, plane);
  }

  /** The final model, the generation eval after training, the merged model, the loss plot. */
  private async saveOutputs(generation: GenerationEval): Promise<void> {
    const { job } = this;
    await this.update({ message: "saving the final model" });
    // Written beside final/ and renamed into place once complete (final_swap.ts): the workers name the folder
    // from their roots; this process writes its part through the output folder it holds.
    const local = this.outputFolder?.self ?? job.output;
    const at = {
      named: finalLayoutAt(finalStagingDir(job.output)),
      local: finalLayoutAt(await stageFinal(local)),
      published: finalLayout(job.output),
    };
    try {
      await this.saveFinalOutputs(generation, at);
    } catch (err) {
      // a worker may still be writing there (its save outlived a cancel): removed once the ring is released
      this.unfinishedCheckpoints.push(at.named.dir);
      throw err;
    }
  }

  private async saveFinalOutputs(generation: GenerationEval, at: FinalPaths): Promise<void> {
    const { spec, job } = this;
    const outputs = await saveFinalModel(this.ring, job, spec, at);
    if (spec.generation_eval) {
      await this.update({ message: "generation eval after training" });
      const after = await generationEval(this.ring, job.id, spec, this.data.setup);
      generation.after = after.report;
      // Every answer in full, beside the model: a server of final/ must give the same ones.
      await writeOutputFile(evalAnswersFile(job.output), after.answers.map((a) => JSON.stringify(a) + "\n").join(""));
      outputs.push(evalAnswersFile(job.output));
      await this.update({ generation_eval: generation });
    }
    if (spec.method !== "full") {
      await this.update({ message: "saving the merged model" });
      outputs.push(await saveMergedModel(this.ring, job, spec, at)); // last: merging changes the weights in memory
    }
    this.checkStop();
    await publishFinal(this.outputFolder?.self ?? job.output);
    outputs.push(...(await this.lossPlot()));
    await this.update({ status: "completed", message: `outputs: ${outputs.join(", ")}` });
  }

  /** Every rank builds its model (the checkpoint's at `resumeDir`, else the spec's) and joins ring `ring`. */
  /** plane: the NCCL unique ids of the ring and its sequence-parallel groups (see chooseDataPlane); absent: none */
  private async assignRing(resumeDir: string | undefined, ring: string, plane?: DataPlaneChoice): Promise<void> {
    const { spec, job } = this;
    await this.whileShowingActivity(() =>
      this.ring.all((rank) =>
        this.ring.send(
          rank,
          "assign",
          assignRequest(spec, {
            job: job.id,
            ring,
            ringSecret: this.ringSecret,
            rank,
            size: this.ring.size,
            resumeDir,
            lora: this.lora,
            workers: this.ring.workers,
            mixedDevices: ringMixesDevices(this.ring.workers.map((w) => this.env.deviceOf?.(w))),
            ncclId: plane?.ncclId,
            sequenceNcclId: plane?.sequenceNcclIds?.[sequenceGroupOf(rank, spec.sequence_parallel).group],
          }),
          ASSIGN_TIMEOUT_MS,
        ),
      ),
    );
  }

  /**
   * The reference's log-probabilities of every pair, from the initial weights the ring holds now, stored
   * with the data cache; progress in the job's message, a cancel stops it between chunks.
   */
  private async referencePass(file: string, startStep: number): Promise<PairReference> {
    const began = performance.now();
    let lastMessage = 0;
    const reference = await computeReference({
      ring: this.ring,
      job: this.job.id,
      spec: this.spec,
      data: this.data,
      chunkRows: this.plan.rowsPerStep,
      onChunk: async (done, total) => {
        this.checkStop();
        if (performance.now() - lastMessage < 1000) return;
        lastMessage = performance.now();
        const of = total > 0 ? `${done}/${total} pairs (${((100 * done) / total).toFixed(0)}%)` : `${done} pairs`;
        await this.update({ message: `reference log-probabilities of the initial model: ${of}` });
      },
    });
    await writeReference(file, reference);
    const seconds = (performance.now() - began) / 1000;
    this.env.log.info({ job: this.job.id, file, pairs: pairCount(reference), seconds }, "reference computed");
    await this.metrics.append({
      step: startStep,
      event: "reference_logps",
      from_cache: false,
      pairs: pairCount(reference),
      seconds,
    });
    return reference;
  }

  /**
   * Runs `work` while the job's message says what each worker is doing (building a large model takes
   * minutes; "forming a ring" alone would look like a hang): "forming a ring of 2 worker(s): w0 loading
   * weights 37%, w1 initialising".
   */
  private async whileShowingActivity<T>(work: () => Promise<T>): Promise<T> {
    const base = `forming a ring of ${this.ring.size} worker(s)`;
    let shown = base;
    let updating = Promise.resolve();
    const refresh = () => {
      const parts = this.ring.workers
        .map((w) => [w, this.env.activity?.(w)] as const)
        .filter(([, a]) => a)
        .map(([w, a]) => `${w} ${a}`);
      const message = parts.length > 0 ? `${base}: ${parts.join(", ")}` : base;
      if (message === shown) return;
      shown = message;
      updating = updating.then(() => this.update({ message })).catch(() => {});
    };
    const timer = setInterval(refresh, this.env.activityRefreshMs ?? ACTIVITY_REFRESH_MS);
    try {
      return await work();
    } finally {
      clearInterval(timer);
      await updating;
    }
  }

  /** Each step: every rank runs forward-backward on its share and all-reduces; every rank updates; we log. */
  private async trainLoop(startStep: number): Promise<void> {
    const { spec, plan, data } = this;
    const order = new DataOrder(data.train.length, spec.seed);
    const began = performance.now();
    let tokensSeen = 0;
    let lastEvalStep = -1;
    for (let step = startStep + 1; step <= plan.totalSteps; step++) {
      this.checkStop();
      const stepBegan = performance.now();
      const switching = this.switchStep > 0 && step === this.switchStep + 1;
      if (switching) {
        await this.metrics.append({ step: this.switchStep, event: "switch_to_lora" });
        this.env.log.info({ job: this.job.id, step }, "hybrid: switching to LoRA");
      }
      const lr = learningRate(this.schedule, step);
      const rowIndices = order.rowsOfStep(step, plan.rowsPerStep);
      const rows = rowIndices.map((i) => data.train.get(i));
      // Preference training averages its loss over the global batch's pairs, SFT over its target tokens.
      const targets = spec.stage === "dpo" ? countPairs(rows) : countTargets(rows);
      const checksum = spec.checksum_every > 0 && (step % spec.checksum_every === 0 || step === plan.totalSteps);

      // forward-backward, gradient all-reduce and AdamW update, on every rank
      const replies = await this.ring.all((rank) => {
        return this.ring.send(rank, "step", {
          job: this.job.id,
          step,
          lr,
          loss_scale: targets > 0 ? 1 / targets : 0,
          micro_batch_rows: spec.micro_batch_rows,
          batch: rankBatch(rows, rank, {
            ringSize: this.ring.size,
            sequenceParallel: spec.sequence_parallel,
            padId: data.setup.tokenizer.padId,
            seqLen: spec.seq_len,
          }),
          checksum,
          enable_lora: switching ? this.lora : undefined,
          ref_logps: this.reference && rankReference(this.reference.train, rowIndices, rank, this.ring.size),
        });
      });
      const result = combineStepReplies(step, replies, targets);

      // log
      const tokens = countRealTokens(rows);
      tokensSeen += tokens;
      const elapsed = (performance.now() - began) / 1000;
      const tokensPerS = tokensSeen / elapsed;
      await this.metrics.append({
        step,
        loss: result.loss,
        lr,
        grad_norm: result.gradNorm,
        targets,
        tokens,
        tokens_per_s: tokensPerS,
        step_ms: performance.now() - stepBegan,
        loss_by_task: result.lossByTask,
        targets_by_task: result.targetsByTask,
        compute_ms: result.computeMs,
        comm_wait_ms: result.commWaitMs,
        worker_compute_ms: Object.fromEntries(replies.map((r, rank) => [this.ring.workers[rank], r.compute_ms ?? 0])),
        ...prefLine(result.pref),
        ...(checksum ? { checksum: result.checksum } : {}),
      });
      this.env.log.info(
        { job: this.job.id, step, loss: result.loss, lr, grad_norm: result.gradNorm, workers: this.ring.workers },
        "step",
      );
      await this.update({
        step,
        lr,
        train_loss: { first: this.job.train_loss.first ?? result.loss, last: result.loss },
        tokens_per_s: tokensPerS,
        eta_s: ((plan.totalSteps - step) * elapsed) / (step - startStep),
      });

      if (spec.eval_every > 0 && step % spec.eval_every === 0) {
        await this.evaluate(step);
        lastEvalStep = step;
      }
      if (spec.save_every > 0 && step % spec.save_every === 0 && step < plan.totalSteps) {
        await this.checkpoint(step);
        if (this.ring.size < workerRange(spec.workers).max && (this.env.idleWorkersFor?.(this.job) ?? 0) > 0)
          throw new RingGrows(step, this.ring.size);
      }
    }
    if (lastEvalStep !== plan.totalSteps) await this.evaluate(plan.totalSteps);
  }

  /** The ring's size from this start's first step on, in the job record (its size over time). */
  private async recordRingSize(startStep: number, plane: DataPlaneChoice): Promise<void> {
    const sizes = this.job.ring_sizes ?? [];
    // a start from the same step with the same size (a requeue before any step) adds nothing new
    const last = sizes.at(-1);
    if (last && last.step === startStep && last.size === this.ring.size) return;
    const entry = {
      step: startStep,
      size: this.ring.size,
      at: new Date().toISOString(),
      data_plane: plane.description,
      sequence_data_planes: plane.sequenceDescriptions,
    };
    await this.update({ ring_sizes: [...sizes, entry].slice(-MAX_RING_SIZES) });
  }

  /** loss.svg and loss.png beside metrics.jsonl; a plot that fails is logged, never fails a trained job */
  private async lossPlot(): Promise<string[]> {
    try {
      const held = this.outputFolder?.path("") ?? this.job.output;
      const written = await writeLossPlot(held, this.job.id);
      const png = path.join(this.job.output, path.basename(written.png));
      return [png];
    } catch (err) {
      this.env.log.warn({ job: this.job.id, err }, "loss plot not written");
      return [];
    }
  }

  private async evaluate(step: number): Promise<void> {
    const val = await validationLoss(this.ring, this.job.id, this.spec, this.data, this.reference?.val);
    if (!val) return;
    await this.metrics.append({
      step,
      val_loss: val.loss,
      val_loss_by_task: val.lossByTask,
      ...prefLine(val.pref, "val_"),
    });
    await this.update({ val_loss: val.loss, val_loss_by_task: val.lossByTask });
  }

  private async checkpoint(step: number): Promise<void> {
    const dir = checkpointDir(this.job.output, step);
    const state = {
      job: this.job.id,
      step,
      total_steps: this.plan.totalSteps,
      rows_per_step: this.plan.rowsPerStep,
      data_position: step * this.plan.rowsPerStep,
      seed: this.spec.seed,
      train_loss_first: this.job.train_loss.first,
    };
    const estimate = this.job.memory_estimate;
    // The coordinator's own part of the checkpoint (its state file, the rename, pruning older ones) goes
    // through checkpoints/ reached from the output folder it holds, with no link on the way: a parent swapped
    // for a link mid-job cannot send a write, or a removal, elsewhere. The workers get the folder's name.
    const checkpoints = this.outputFolder
      ? holdFolderBeneath(path.join(this.outputFolder.self, "checkpoints"), [this.outputFolder.self], {
          create: true,
        })
      : undefined;
    try {
      const localDir = checkpoints ? path.join(checkpoints.self, path.basename(dir)) : dir;
      await writeCheckpoint(
        dir,
        state,
        async (tmp) => {
          const save = (rank: number) =>
            this.ring.send(rank, "save", {
              job: this.job.id,
              dir: tmp,
              what: "model",
              dtype: "F32",
              with_optimizer: true,
            });
          // Under ZeRO-1 each rank holds a shard of the moments: every rank takes part in gathering them, and
          // rank 0 writes the files.
          if (this.spec.zero >= 1 && this.ring.size > 1) await this.ring.all(save);
          else await save(0);
          // A checkpoint is served as often as final/ (to compare steps): it renders chats as training did.
          await recordText(this.job, this.spec, checkpointTempDir(localDir));
        },
        {
          needBytes: estimate ? estimate.params_bytes + estimate.optimizer_bytes : undefined,
          removeLater: (tmp) => this.unfinishedCheckpoints.push(tmp),
          localDir,
        },
      );
      await this.update({ last_checkpoint: { step, dir } });
      this.env.log.info({ job: this.job.id, step, dir }, "checkpoint written");
      // Only once the record names the new checkpoint: a restart never looks for one that was deleted.
      if (this.spec.keep_checkpoints !== undefined) {
        const removed = await pruneCheckpoints(localDir, this.spec.keep_checkpoints);
        const named = removed.map((r) => path.join(path.dirname(dir), path.basename(r)));
        if (removed.length > 0) this.env.log.info({ job: this.job.id, removed: named }, "older checkpoints deleted");
      }
    } finally {
      checkpoints?.close();
    }
  }

  /**
   * Frees the ring's workers; returns those that did not answer, presumed gone (not scheduled again until
   * they show they are alive).
   */
  async release(lost?: string): Promise<string[]> {
    const gone = await this.ring.release(this.job.id, lost);
    for (const worker of gone) this.env.suspect(worker);
    // Every worker has answered the release (a worker runs its commands in order, so its save has ended) or is
    // presumed gone: no one writes into an unfinished checkpoint any more, and it goes whole.
    for (const tmp of this.unfinishedCheckpoints.splice(0))
      await rm(tmp, { recursive: true, force: true }).catch((err: Error) =>
        this.env.log.warn({ job: this.job.id, err, dir: tmp }, "could not remove an unfinished checkpoint"),
      );
    return gone;
  }
}

function pairCount(ref: PairReference): number {
  return (ref.train.logps.length + ref.val.logps.length) / 2;
}

function preparingMessage(p: PrepareProgress): string {
  const rate = p.seconds > 0 ? p.tokens / p.seconds / 1e6 : 0;
  return `preparing the data: ${p.records} records read, ${p.tokens} tokens, ${p.targets} targets (${rate.toFixed(2)} M tokens/s)`;
}
