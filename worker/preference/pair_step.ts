// One micro-batch of preference pairs on a worker: the reference's log-probabilities (the frozen base with
// its adapters off, when the loss has a reference), the policy's, each pair's loss and its derivatives,
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
  const reference = needsReference(o.settings.loss) ? await forward(model.loraSettings() !== null) : undefined;
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
