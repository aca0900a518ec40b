// A worker's side of a job: the coordinator's commands (assign, step, eval, generate, save, release),
// one at a time, each answered with its reply message or an error that says what failed.
import { holdFolderBeneath } from "../files/folder_beneath.js";
import { inputPresent, namingKey } from "../files/input_files.js";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ModelDeviceName, NativeModel } from "../native/js/addon.js";
import { readHfConfig, type HfConfig } from "../hf/hf_config.js";
import { generateGreedy } from "../native/js/greedy_generation.js";
import { initModel, loadModel, saveModel } from "../hf/hf_model.js";
import { applyAdapter, saveAdapter } from "../hf/peft_adapter.js";
import {
  STOPPING_ACTIVITY,
  checkpointAdapterDir,
  decodeCommandRequest,
  encodeCommandReply,
  type CommandRequest,
  type CommandResult,
  type WorkerCommand,
} from "../proto/mod.js";
import {
  connectTransport,
  DEFAULT_PEER_TIMEOUT_MS,
  NcclDataPlane,
  ncclUnavailableReason,
  newNcclId,
  openNcclId,
  sealNcclId,
  type Transport,
} from "./allreduce/mod.js";
import { loadOptimizerState, saveOptimizerState } from "./optimizer_state.js";
import { checkAssignPaths, checkSavePath } from "./command_paths.js";
import type { PathRoots } from "../files/path_roots.js";
import { joinSequenceGroup, type SequenceGroup } from "./sequence_parallel/group_link.js";
import { checkSequenceNcclId, joinNcclSequenceGroup } from "./sequence_parallel/nccl_group.js";
import { applyZeroShard, gatherFullMoments } from "./zero_shard.js";
import { Trainer } from "./trainer.js";
import type { WorkerMetrics } from "./worker_metrics.js";
import { failpointAt } from "./failpoint.js";

/** Positions that hold a token of some record (padding has no task). */
function realTokens(batch: { token_task: Int32Array }): number {
  let n = 0;
  for (const t of batch.token_task) if (t >= 0) n++;
  return n;
}

/** The job's ring timeouts, for setup and for a silent neighbour, with ranks named by their workers. */
function ringTimeouts(m: CommandRequest<"assign">) {
  const workers = m.ring_workers;
  return {
    setupTimeoutMs: m.ring_timeout_ms,
    peerTimeoutMs: m.ring_timeout_ms,
    describePeer: workers?.length === m.size ? (rank: number) => workers[rank]! : undefined,
  };
}

type CommandHandlers = { [C in WorkerCommand]: (request: CommandRequest<C>) => Promise<CommandResult<C>> };

interface ActiveJob {
  id: string;
  config: HfConfig;
  trainer: Trainer;
  /** the formation of the ring this job runs in (a job keeps its id across re-formations) */
  ring: string;
}

export class JobRunner {
  private job: ActiveJob | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** what a long command is doing now (building the model, saving) */
  private doing: string | undefined;
  /** set from an interruption until the commands it interrupted have ended (their native work with them) */
  private stopping: Promise<void> | undefined;
  /** the job whose assign is building its model and ring: the worker is busy with it already */
  private assigning: string | undefined;
  /** stops that build at its next phase (a release of the job: canceled, or a peer lost meanwhile) */
  private assignStop: AbortController | undefined;
  /** why the ring of the current job broke while no command waited on it (told to the coordinator at once) */
  private ringBroken: { ring: string; why: string } | undefined;
  /** called when the ring of the current job breaks: the worker tells the coordinator without waiting */
  onRingBroken: () => void = () => {};
  /** the folders commands may read and write under (see command_paths.ts); undefined: unconfined */
  pathRoots: PathRoots | undefined;
  /** where each job's model is built: the CPU's backend, the CUDA backend on GPU N or on the CUDA emulator */
  modelDevice: ModelDeviceName = "cpu";

  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    private readonly net: { listenHost?: string; advertiseHost?: string } = {},
    private readonly metrics?: WorkerMetrics,
  ) {}

  /** Why the current job's ring broke, when it did: sent with each heartbeat until the job is released. */
  get ringBrokenReason(): string | undefined {
    const broken = this.ringBroken;
    return broken && broken.ring === this.job?.ring ? broken.why : undefined;
  }

  get currentJob(): string | undefined {
    return this.job?.id ?? this.assigning;
  }

  /**
   * What the worker is doing, sent with each heartbeat: STOPPING_ACTIVITY while an interrupted step winds
   * down (the coordinator schedules nothing on it until that ends), else the long command's progress.
   */
  get activity(): string | undefined {
    return this.stopping ? STOPPING_ACTIVITY : this.doing;
  }

  /**
   * Runs commands strictly one after another: a step must never overlap a save, a release or the next job's
   * assign. A release first interrupts the running command out of turn (its native step stops at the next
   * layer, its ring closes): a step waiting on a peer that hangs would otherwise never end, and the release
   * (and every later assign) would queue behind it forever.
   */
  handle(command: WorkerCommand, data: Uint8Array): Promise<Uint8Array> {
    if (command === "release") this.interruptFor(data);
    const run = this.queue.then(() => this.dispatch(command, data));
    this.queue = run.catch(() => {});
    return run;
  }

  private readonly handlers: CommandHandlers = {
    assign: (m) => {
      if (this.pathRoots) checkAssignPaths(m, this.pathRoots);
      checkSequenceNcclId(m);
      return this.assign(m);
    },
    step: (m) => this.step(m),
    eval: (m) => this.evaluate(m),
    generate: (m) => this.generate(m),
    save: (m) => {
      if (this.pathRoots) checkSavePath(m, this.pathRoots);
      return this.save(m);
    },
    release: (m) => this.release(m.job),
    data_plane: (m) => Promise.resolve(this.probeDataPlane(m)),
  };

  /** Whether this worker can join an NCCL data plane; the ring's first rank also makes the sealed id. */
  private probeDataPlane(m: CommandRequest<"data_plane">): CommandResult<"data_plane"> {
    const reason = ncclUnavailableReason(this.modelDevice);
    if (reason) return { nccl: false, reason: `${reason}` };
    if (!m.create_nccl_id && !m.sequence_group_ring) return { nccl: true };
    const secret = m.ring_secret;
    if (!secret) return { nccl: false, reason: "the ring has no secret to seal the NCCL id with" };
    // Each id is sealed for the ring (or the sequence-parallel group) it serves: it opens nowhere else.
    const sealedFor = (ring: string) => Uint8Array.from(sealNcclId(secret, ring, newNcclId(this.modelDevice)));
    return {
      nccl: true,
      nccl_id: m.create_nccl_id ? sealedFor(m.ring) : undefined,
      sequence_nccl_id: m.sequence_group_ring ? sealedFor(m.sequence_group_ring) : undefined,
    };
  }

  /**
   * Decodes the request, runs its handler, and encodes the reply: the handler's result as an ok reply, a
   * thrown error (a bad request included) as an error reply naming the cause.
   */
  private async dispatch<C extends WorkerCommand>(command: C, data: Uint8Array): Promise<Uint8Array> {
    failpointAt(command);
    try {
      const result = await this.handlers[command](decodeCommandRequest(command, data));
      return encodeCommandReply(command, { ok: true, ...result });
    } catch (err) {
      const e = err as Error;
      this.log.error({ err: e }, `${command}: ${e.message}`);
      return encodeCommandReply(command, { ok: false, error: e.message });
    }
  }

  private active(job: string): ActiveJob {
    if (!this.job || this.job.id !== job)
      throw new Error(`this worker is not assigned to job ${job}${this.job ? ` (it runs ${this.job.id})` : ""}`);
    return this.job;
  }

  private async assign(m: CommandRequest<"assign">): Promise<CommandResult<"assign">> {
    this.log.info({ job: m.job, rank: m.rank }, "assigned");
    this.assigning = m.job;
    const stop = (this.assignStop = new AbortController());
    try {
      return await this.buildAndJoin(m, stop.signal);
    } finally {
      this.assigning = undefined;
      this.assignStop = undefined;
      this.doing = undefined;
    }
  }

  /**
   * The model (allocated, initialised or loaded off the main thread, so heartbeats keep flowing however
   * long it takes), then the ring. Gradients and moments are not allocated here: the first step does that,
   * for what trains only (the adapters under LoRA). A release of the job while it builds (a cancel) stops it
   * at the next phase: each native phase runs to its end, none after it starts, and the ring is never joined.
   */
  private async buildAndJoin(m: CommandRequest<"assign">, stop: AbortSignal): Promise<CommandResult<"assign">> {
    if (this.job) await this.release(this.job.id);
    const { model, config, step } = await this.buildModel(m, stop).catch((err: unknown) => {
      // a refused input names the command's field as well as the file
      throw namingKey(err, [
        ["model.path", m.model.path],
        ["model.init.config", m.model.init?.config],
        ["model.resume", m.model.resume],
        ["model.adapter", m.model.adapter],
      ]);
    });
    const { transport, nccl, group } = await this.joinRing(m, model, stop);
    const o = m.optimizer;
    const trainer = new Trainer(
      model,
      transport,
      {
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: o.weight_decay,
        maxGradNorm: o.grad_clip,
        hostUpdate: o.host_update,
      },
      group,
      { zero: o.zero, preference: m.preference, nccl },
    );
    this.log.info(
      { job: m.job, rank: m.rank, dataPlane: trainer.dataPlane, sequenceDataPlane: trainer.sequenceDataPlane },
      "data plane",
    );
    this.job = { id: m.job, config, trainer, ring: m.ring };
    return { num_params: model.params().reduce((n, p) => n + p.size, 0), step };
  }

  /** The model of an assignment, from a checkpoint, a model folder or an init config, ready to train. */
  private async buildModel(
    m: CommandRequest<"assign">,
    stop: AbortSignal,
  ): Promise<{ model: NativeModel; config: HfConfig; step: number }> {
    // Not a place to stop: loading reports its progress from inside its reads.
    const onActivity = (a: string) => (this.doing = a);
    const device = this.modelDevice;
    // A GPU rank computes in bf16 unless the job says fp32; the CPU computes in fp32 whatever it says.
    const precision = m.precision ?? "bf16";
    let model: NativeModel;
    let config: HfConfig;
    let step = 0;
    const zero = (m.optimizer.zero ?? 0) >= 1 && m.size > 1;
    if (m.model.resume) {
      // A checkpoint: the (base) weights, the adapter when it was taken under LoRA, the trainables' AdamW state.
      const adapter = checkpointAdapterDir(m.model.resume);
      // A LoRA checkpoint's base is read straight into bf16 when the job trains on a bf16 base.
      const baseBf16 = inputPresent(adapter) && (m.lora?.baseBf16 ?? false);
      ({ model, config } = await loadModel(m.model.resume, { onActivity, baseBf16, device, precision }));
      stop.throwIfAborted();
      // The base goes back to the precision the job trains it in (bf16 under LoRA unless it says fp32).
      if (inputPresent(adapter)) await applyAdapter(model, adapter, { baseBf16: m.lora?.baseBf16 });
      // A checkpoint holds the full moments; a sharded rank reads only its pieces of them.
      if (zero) applyZeroShard(model, m.rank, m.size);
      stop.throwIfAborted();
      onActivity("loading optimizer state");
      await model.prepareTraining();
      step = await loadOptimizerState(model, m.model.resume);
    } else if (m.model.path) {
      // A LoRA job's bf16 base is read into bf16: never a full fp32 copy first.
      ({ model, config } = await loadModel(m.model.path, {
        onActivity,
        baseBf16: m.lora?.baseBf16,
        device,
        precision,
      }));
    } else if (m.model.init) {
      config = await readHfConfig(m.model.init.config);
      // A LoRA job's bf16 base is created in bf16: never a full fp32 copy first.
      model = await initModel(config, m.model.init.seed, {
        onActivity,
        baseBf16: m.lora?.baseBf16,
        device,
        precision,
      });
    } else {
      throw new Error("assign: the model source names neither path, init nor resume");
    }
    stop.throwIfAborted();
    if (m.model.adapter && !m.model.resume) await applyAdapter(model, m.model.adapter, { baseBf16: m.lora?.baseBf16 });
    if (m.lora && !model.loraSettings()) {
      if (m.lora.baseBf16) onActivity("rounding the frozen base to bf16");
      await model.enableLoraAsync(m.lora);
      stop.throwIfAborted();
    }
    model.setActivationCheckpointing(m.activation_checkpointing ?? false);
    if (zero) applyZeroShard(model, m.rank, m.size); // before the moments are allocated: only the shard's
    onActivity("allocating gradients and optimizer state");
    await model.prepareTraining(); // nothing to do when a checkpoint's moments were loaded above
    stop.throwIfAborted();
    return { model, config, step };
  }

  /** The ring's transport, then the NCCL communicator and the sequence-parallel group where the job has them. */
  private async joinRing(
    m: CommandRequest<"assign">,
    model: NativeModel,
    stop: AbortSignal,
  ): Promise<{ transport: Transport; nccl?: NcclDataPlane; group?: SequenceGroup }> {
    const onActivity = (a: string) => (this.doing = a);
    const spSize = m.sequence_parallel ?? 1;
    this.log.info(
      {
        job: m.job,
        rank: m.rank,
        size: m.size,
        sequenceParallel: m.sequence_parallel ?? 1,
        transport: m.transport,
        lora: !!model.loraSettings(),
      },
      "joining ring",
    );
    onActivity("joining the ring");
    const transport = await connectTransport({
      nc: this.nc,
      ring: m.ring,
      rank: m.rank,
      size: m.size,
      kind: m.transport,
      secret: m.ring_secret,
      onRefused: (why) => this.log.warn({ job: m.job }, why),
      ...ringTimeouts(m),
      ...this.net,
    });
    // A neighbour that dies between commands breaks the ring with nothing waiting on it; a command sent to
    // the dead one meanwhile may be lost with its connection, so only this report spares the coordinator
    // the wait for the heartbeat threshold.
    if (stop.aborted) {
      await transport.close();
      stop.throwIfAborted();
    }
    transport.onBroken?.((err) => {
      this.ringBroken = { ring: m.ring, why: err.message };
      this.onRingBroken();
    });
    let nccl: NcclDataPlane | undefined;
    if (m.nccl_id && m.size > 1) {
      onActivity("joining the NCCL communicator");
      try {
        if (!m.ring_secret) throw new Error("assign: nccl_id comes without the ring secret that opens it");
        const id = openNcclId(m.ring_secret, m.ring, m.nccl_id);
        nccl = await NcclDataPlane.connect(
          id,
          m.rank,
          m.size,
          m.ring_timeout_ms ?? DEFAULT_PEER_TIMEOUT_MS,
          this.modelDevice,
        );
      } catch (err) {
        await transport.close();
        throw err;
      }
    }
    let group: SequenceGroup | undefined;
    if (spSize > 1) {
      onActivity("joining the sequence-parallel group");
      const member = { ring: m.ring, rank: m.rank, size: spSize, secret: m.ring_secret };
      try {
        // An all-GPU group with NCCL was handed its communicator's id: never a silent fall back to TCP.
        group = m.sequence_nccl_id
          ? await joinNcclSequenceGroup({
              ...member,
              sealedId: m.sequence_nccl_id,
              timeoutMs: m.ring_timeout_ms ?? DEFAULT_PEER_TIMEOUT_MS,
              device: this.modelDevice,
            })
          : await joinSequenceGroup({ ...member, nc: this.nc, ...ringTimeouts(m), ...this.net });
      } catch (err) {
        nccl?.abort();
        await transport.close();
        throw err;
      }
    }
    return { transport, nccl, group };
  }

  private async step(m: CommandRequest<"step">): Promise<CommandResult<"step">> {
    const job = this.active(m.job);
    if (m.enable_lora && !job.trainer.model.loraSettings()) {
      await job.trainer.model.enableLoraAsync(m.enable_lora);
      this.log.info({ job: m.job, step: m.step }, "switched to LoRA: base weights frozen");
    }
    const r = await job.trainer.trainStep({
      step: m.step,
      lr: m.lr,
      lossScale: m.loss_scale,
      microBatchRows: m.micro_batch_rows,
      batch: m.batch,
      checksum: m.checksum,
      refLogps: m.ref_logps,
    });
    this.metrics?.observeStep({ job: m.job, tokens: realTokens(m.batch), ...r });
    this.log.debug({ job: m.job, step: m.step, compute_ms: r.computeMs, comm_wait_ms: r.commWaitMs }, "step");
    return {
      loss_sum: r.lossSum,
      targets: r.targets,
      task_sums: r.taskSums,
      pref_sums: r.prefSums,
      grad_norm: r.gradNorm,
      checksum: r.checksum,
      compute_ms: r.computeMs,
      comm_wait_ms: r.commWaitMs,
    };
  }

  private async evaluate(m: CommandRequest<"eval">): Promise<CommandResult<"eval">> {
    const trainer = this.active(m.job).trainer;
    if (m.pair_logps) return { pair_logps: await trainer.pairLogps(m.batch, m.micro_batch_rows) };
    const r = await trainer.evaluate(m.batch, m.micro_batch_rows, m.ref_logps);
    return { loss_sum: r.lossSum, targets: r.targets, task_sums: r.taskSums, pref_sums: r.prefSums };
  }

  private async generate(m: CommandRequest<"generate">): Promise<CommandResult<"generate">> {
    const model = this.active(m.job).trainer.model;
    return { outputs: await generateGreedy(model, m.prompts, m.max_new, m.eos_ids) };
  }

  private async save(m: CommandRequest<"save">): Promise<CommandResult<"save">> {
    this.doing = `saving ${m.what === "adapter" ? "the adapter" : "the model"}`;
    try {
      return await this.saveOutputs(m);
    } finally {
      this.doing = undefined;
    }
  }

  private async saveOutputs(m: CommandRequest<"save">): Promise<CommandResult<"save">> {
    const job = this.active(m.job);
    const model = job.trainer.model;
    // A ZeRO-1 checkpoint: every rank gathers the full moments (the coordinator asks them all); rank 0 writes.
    const full =
      m.what === "model" && m.with_optimizer && job.trainer.sharded
        ? await gatherFullMoments(model, job.trainer.ring, `ckpt${model.getStep()}`)
        : undefined;
    if (job.trainer.sharded && job.trainer.rank !== 0) return {};
    // Confined: the folder is reached from the output root with no link at any component and held while
    // the files go in, so a parent swapped for a link mid-save cannot send the rest of them elsewhere.
    const held = this.pathRoots ? holdFolderBeneath(m.dir, this.pathRoots.output, { create: true }) : undefined;
    try {
      await this.writeOutputs(m, held?.self ?? m.dir, job, full);
    } finally {
      held?.close();
    }
    return {};
  }

  /** The files of a save into `dir` (the folder `m.dir` names, perhaps as held); names recorded are m.dir's. */
  private async writeOutputs(
    m: CommandRequest<"save">,
    dir: string,
    job: ActiveJob,
    full: { m: Float32Array; v: Float32Array } | undefined,
  ): Promise<void> {
    const model = job.trainer.model;
    const lora = model.loraSettings() !== null;
    if (m.what === "adapter") {
      if (!lora) throw new Error("save adapter: LoRA is not on");
      await saveAdapter(model, dir, { baseModel: m.base_model ?? "" });
      return;
    }
    if (m.what === "merged") {
      if (lora) await model.mergeLora();
      await saveModel(model, job.config, dir, { dtype: m.dtype });
      return;
    }
    await saveModel(model, job.config, dir, { dtype: m.dtype });
    if (m.with_optimizer) {
      // A checkpoint under LoRA keeps its adapter beside the frozen base, for resuming.
      if (lora) await saveAdapter(model, checkpointAdapterDir(dir), { baseModel: m.dir });
      await saveOptimizerState(model, dir, full);
    }
  }

  private interruptFor(data: Uint8Array): void {
    let job: string;
    try {
      ({ job } = decodeCommandRequest("release", data));
    } catch {
      return; // A malformed release is answered with its error in turn, by dispatch.
    }
    this.interrupt(job, new Error(`job ${job} was released by the coordinator while this command ran`));
  }

  /**
   * Interrupts what `jobId` is running now (a step waiting on a hung peer, a long backward): the trainer
   * cancels its native step and closes the ring. The worker reports "stopping" until every command queued
   * so far has ended, which a native call does only once its work has stopped.
   */
  private interrupt(jobId: string, why: Error): void {
    const job = this.job;
    if (this.assigning === jobId && this.assignStop) {
      // The job is still building its model (loading weights, say): no ring to close yet, the build stops
      // at its next phase.
      this.log.info({ job: jobId, reason: why.message }, "stopping the model build");
      this.assignStop.abort(why);
    } else if (job && job.id === jobId) {
      this.log.info({ job: jobId, reason: why.message }, "interrupting the running command");
      void job.trainer.interrupt(why).catch((err: Error) => this.log.warn({ err }, "closing the ring transport"));
    } else return;
    const settled = this.queue.then(() => {});
    this.stopping = settled;
    void settled.then(() => {
      this.log.info({ job: jobId }, "interrupted work stopped");
      if (this.stopping === settled) this.stopping = undefined;
    });
  }

  async release(jobId: string): Promise<CommandResult<"release">> {
    if (this.job && this.job.id === jobId) {
      const job = this.job;
      this.job = undefined;
      await job.trainer.close().catch((err: Error) => this.log.warn({ err }, "closing the ring transport"));
    }
    return {};
  }
}
