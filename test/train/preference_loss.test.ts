// The preference losses of a pair and their derivatives by the summed log-probabilities, against central
// finite differences in double, for each loss with and without pref_ftx and label smoothing; ln 2 where
// policy and reference agree; LLaMA-Factory's definitions at hand-computed points.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pairLoss, type PairLogps } from "../../worker/preference/pair_loss.js";
import type { PreferenceSettings } from "../../proto/preference.js";

const base: PreferenceSettings = { loss: "sigmoid", beta: 0.1, ftx: 0, labelSmoothing: 0, simpoGamma: 0.5 };

const points: PairLogps[] = [
  { chosen: -12.5, rejected: -20.25, chosenTokens: 7, rejectedTokens: 9, refChosen: -14, refRejected: -18.5 },
  { chosen: -3.2, rejected: -1.1, chosenTokens: 4, rejectedTokens: 2, refChosen: -2.9, refRejected: -1.6 },
  { chosen: -40, rejected: -90, chosenTokens: 20, rejectedTokens: 30, refChosen: -60, refRejected: -70 },
];

const settings: [string, Partial<PreferenceSettings>][] = [
  ["sigmoid", { loss: "sigmoid" }],
  ["sigmoid, label smoothing 0.2, beta 0.5", { loss: "sigmoid", labelSmoothing: 0.2, beta: 0.5 }],
  ["ipo", { loss: "ipo", beta: 0.3 }],
  ["orpo", { loss: "orpo", beta: 0.2 }],
  ["simpo", { loss: "simpo", beta: 2, simpoGamma: 1 }],
  ["sigmoid + ftx", { loss: "sigmoid", ftx: 0.7 }],
  ["simpo + ftx", { loss: "simpo", beta: 2.5, ftx: 1.5 }],
];

for (const [name, over] of settings) {
  test(`${name}: derivatives by the chosen and rejected log-prob sums match finite differences`, () => {
    const s = { ...base, ...over };
    for (const p of points) {
      const r = pairLoss(p, s);
      const h = 1e-5;
      const fd = (key: "chosen" | "rejected") =>
        (pairLoss({ ...p, [key]: p[key] + h }, s).loss - pairLoss({ ...p, [key]: p[key] - h }, s).loss) / (2 * h);
      for (const [got, want] of [
        [r.dChosen, fd("chosen")],
        [r.dRejected, fd("rejected")],
      ] as const)
        assert.ok(
          Math.abs(got - want) <= 1e-8 + 1e-6 * Math.abs(want),
          `${name} at ${JSON.stringify(p)}: ${got} vs ${want}`,
        );
    }
  });
}

test("sigmoid DPO is ln 2 and its rewards 0 where the policy equals the reference", () => {
  const r = pairLoss(
    { chosen: -5, rejected: -8, chosenTokens: 3, rejectedTokens: 4, refChosen: -5, refRejected: -8 },
    base,
  );
  assert.equal(r.loss, Math.LN2);
  assert.equal(r.rewardChosen, 0);
  assert.equal(r.rewardRejected, 0);
  assert.equal(r.dChosen, -base.beta / 2);
  assert.equal(r.dRejected, base.beta / 2);
});

test("the losses at hand-computed points (LLaMA-Factory's and TRL's definitions)", () => {
  const p = points[0]!;
  // sigmoid: z = beta((pc - rc) - (pr - rr)) on sums
  const z = 0.1 * (-12.5 + 14 - (-20.25 + 18.5));
  assert.ok(Math.abs(pairLoss(p, base).loss - Math.log1p(Math.exp(-z))) < 1e-15);
  // ipo on length-averaged log-probs
  const h = -12.5 / 7 + 14 / 7 - (-20.25 / 9 + 18.5 / 9) - 1 / (2 * 0.3);
  assert.ok(Math.abs(pairLoss(p, { ...base, loss: "ipo", beta: 0.3 }).loss - h * h) < 1e-15);
  // orpo: -pc + beta * -logsig(log odds ratio), averaged
  const [pc, pr] = [-12.5 / 7, -20.25 / 9];
  const lor = pc - pr - (Math.log(1 - Math.exp(pc)) - Math.log(1 - Math.exp(pr)));
  const orpo = -pc + 0.2 * Math.log1p(Math.exp(-lor));
  assert.ok(Math.abs(pairLoss(p, { ...base, loss: "orpo", beta: 0.2 }).loss - orpo) < 1e-14);
  // simpo: -logsig(beta (pc - pr) - gamma)
  const simpo = Math.log1p(Math.exp(-(2 * (pc - pr) - 1)));
  assert.ok(Math.abs(pairLoss(p, { ...base, loss: "simpo", beta: 2, simpoGamma: 1 }).loss - simpo) < 1e-14);
  // ftx: + ftx * (chosen mean NLL)
  const withFtx = pairLoss(p, { ...base, ftx: 0.5 }).loss - pairLoss(p, base).loss;
  assert.ok(Math.abs(withFtx - 0.5 * (12.5 / 7)) < 1e-14);
});
