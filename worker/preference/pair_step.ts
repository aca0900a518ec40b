// One micro-batch of preference pairs on a worker: the reference's log-probabilities (the frozen base with
// its adapters off under LoRA; otherwise those the coordinator sends, computed once from the initial weights
// before training), the policy's, each pair's loss and its derivatives,
// then the backward with those derivatives as per-position weights on the cross-entropy. The policy's
// log-probabilities come from a forward without dropout; the backward's forward recomputes them (with the
// adapters' dropout when the job sets one, the only case where the two differ).
import type { NativeBatch, NativeCancelToken, NativeModel, GradsReady } from "../../native/js/addon.js";
import { addPair, needsReference, type PreferenceSettings, type PrefSums, type TaskSums } from "../../proto/mod.js";
import { NO_TASK } from "../../proto/task_sums.js";
import { mapPairs, slotLogps, slotWeights } from "./pair_batch.js";
import { pairLoss } from "./pair_loss.js";

export interface PairStepOptions {
  settings: PreferenceSettings;
  /** 1 / pairs of the global batch (0: forward only) */
  lossScale: number;
  backward: boolean;
  zeroGrads?: boolean;
  onGradsReady?: GradsReady;
  cancel?: NativeCancelToken;
  /**
   * The reference's log-probabilities of the pairs of the rank's batch (chosen, rejected per pair), this
   * micro-batch's from `offset` on; the loss needs them if it has a reference and the model no adapters.
   */
  reference?: { logps: ArrayLike<number>; offset: number };
}

export interface PairStepResult {
  /** sum of the pairs' losses */
  lossSum: number;
  pairs: number;
}

export async function pairStep(
  model: NativeModel,
  mb: { batch: NativeBatch; tokenTask: Int32Array },
  tasks: readonly string[],
  o: PairStepOptions,
  taskSums: TaskSums,
  prefSums: PrefSums,
): Promise<PairStepResult> {
  const map = mapPairs(mb.batch, mb.tokenTask);
  const forward = async (adaptersOff: boolean) => {
    await model.forwardBackward(mb.batch, { backward: false, adaptersOff, cancel: o.cancel });
    return slotLogps(map, model.tokenLosses());
  };
  const reference = needsReference(o.settings.loss)
    ? await referenceLogps(map.pairs, o.reference, model.loraSettings() !== null, forward)
    : undefined;
  const policy = await forward(false);
  const d = new Float64Array(2 * map.pairs);
  let lossSum = 0;
  for (let p = 0; p < map.pairs; p++) {
    const r = pairLoss(
      {
        chosen: policy[2 * p]!,
        rejected: policy[2 * p + 1]!,
        chosenTokens: map.tokens[2 * p]!,
        rejectedTokens: map.tokens[2 * p + 1]!,
        refChosen: reference ? reference[2 * p]! : 0,
        refRejected: reference ? reference[2 * p + 1]! : 0,
      },
      o.settings,
    );
    d[2 * p] = r.dChosen * o.lossScale;
    d[2 * p + 1] = r.dRejected * o.lossScale;
    lossSum += r.loss;
    const k = map.task[p]!;
    const task = k >= 0 ? tasks[k]! : NO_TASK;
    addPair(prefSums, task, r);
    const t = (taskSums[task] ??= [0, 0]);
    t[0] += r.loss;
    t[1] += 1;
  }
  if (o.backward)
    await model.forwardBackward(mb.batch, {
      backward: true,
      lossScale: 1,
      labelWeights: slotWeights(map, d),
      zeroGrads: o.zeroGrads,
      onGradsReady: o.onGradsReady,
      cancel: o.cancel,
    });
  return { lossSum, pairs: map.pairs };
}

/**
 * The reference's log-probabilities: those given (full or hybrid training: the initial weights' ones, which
 * a hybrid's switch to LoRA does not bring back), else the base with the adapters off.
 */
async function referenceLogps(
  pairs: number,
  given: PairStepOptions["reference"],
  hasAdapters: boolean,
  forward: (adaptersOff: boolean) => Promise<Float64Array>,
): Promise<ArrayLike<number>> {
  if (given) {
    const end = given.offset + 2 * pairs;
    if (end > given.logps.length)
      throw new Error(
        `the reference has ${given.logps.length} log-probabilities, fewer than the batch's pairs need (2 a pair)`,
      );
    return Array.prototype.slice.call(given.logps, given.offset, end) as number[];
  }
  if (!hasAdapters)
    throw new Error("the loss compares with a reference, and the step brings no reference log-probabilities");
  return forward(true);
}

/** The model's own summed log-probabilities of a micro-batch's pairs (chosen, rejected per pair). */
export async function pairLogps(
  model: NativeModel,
  mb: { batch: NativeBatch; tokenTask: Int32Array },
  cancel?: NativeCancelToken,
): Promise<Float64Array> {
  const map = mapPairs(mb.batch, mb.tokenTask);
  await model.forwardBackward(mb.batch, { backward: false, cancel });
  return slotLogps(map, model.tokenLosses());
}
