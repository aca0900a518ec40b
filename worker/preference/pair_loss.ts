// The preference losses of one pair, in double precision, with their derivatives by the policy's summed
// log-probabilities of the chosen and the rejected answer (what the native backward needs as per-position
// weights). Definitions follow LLaMA-Factory's CustomDPOTrainer and TRL's DPOTrainer:
//   sigmoid (DPO): z = beta((pc - rc) - (pr - rr)); loss = -(1-ls) logsig(z) - ls logsig(-z)
//   ipo:           h = (pc - rc) - (pr - rr) on length-averaged log-probs; loss = (h - 1/(2 beta))^2
//   orpo:          on length-averaged log-probs, loss = -pc + beta * -logsig(log odds(pc) - log odds(pr)),
//                  log odds(p) = p - log(1 - e^p)
//   simpo:         on length-averaged log-probs, loss = -logsig(beta (pc - pr) - gamma)
// pref_ftx adds ftx * (-pc averaged), the chosen answer's mean NLL. Rewards are beta (p - r) with a
// reference, beta p without; a pair is "accurate" when its chosen reward beats its rejected one.
import type { PreferenceSettings } from "../../proto/preference.js";

/** One pair's summed log-probabilities and answer lengths (targets), the reference's when it has one. */
export interface PairLogps {
  chosen: number;
  rejected: number;
  chosenTokens: number;
  rejectedTokens: number;
  refChosen: number;
  refRejected: number;
}

export interface PairLoss {
  loss: number;
  /** d loss / d (summed log-prob of the chosen answer), and of the rejected one */
  dChosen: number;
  dRejected: number;
  rewardChosen: number;
  rewardRejected: number;
  /** the log-probabilities the loss compares (length-averaged for ipo, orpo and simpo) */
  logpChosen: number;
  logpRejected: number;
}

/** log(sigmoid(x)), without overflow either way. */
export function logSigmoid(x: number): number {
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** Whether the loss compares length-averaged log-probabilities (LLaMA-Factory: ipo, orpo, simpo). */
export function averagesLogps(loss: PreferenceSettings["loss"]): boolean {
  return loss !== "sigmoid";
}

export function pairLoss(x: PairLogps, s: PreferenceSettings): PairLoss {
  const avg = averagesLogps(s.loss);
  const nc = avg ? x.chosenTokens : 1;
  const nr = avg ? x.rejectedTokens : 1;
  const pc = x.chosen / nc;
  const pr = x.rejected / nr;
  const rc = x.refChosen / nc;
  const rr = x.refRejected / nr;
  const beta = s.beta;
  let loss: number;
  let dpc: number; // d loss / d pc
  let dpr: number;
  let rewardChosen = beta * (pc - rc);
  let rewardRejected = beta * (pr - rr);
  switch (s.loss) {
    case "sigmoid": {
      const z = beta * (pc - rc - (pr - rr));
      const ls = s.labelSmoothing;
      loss = -(1 - ls) * logSigmoid(z) - ls * logSigmoid(-z);
      const dz = -(1 - ls) * sigmoid(-z) + ls * sigmoid(z);
      dpc = beta * dz;
      dpr = -beta * dz;
      break;
    }
    case "ipo": {
      const h = pc - rc - (pr - rr) - 1 / (2 * beta);
      loss = h * h;
      dpc = 2 * h;
      dpr = -2 * h;
      break;
    }
    case "orpo": {
      // log(1 - e^p) for p < 0, exact near 0 and far below it
      const log1mExp = (p: number) => (p > -Math.LN2 ? Math.log(-Math.expm1(p)) : Math.log1p(-Math.exp(p)));
      const logOdds = pc - pr - (log1mExp(pc) - log1mExp(pr));
      loss = -pc - beta * logSigmoid(logOdds);
      const dOdds = -beta * sigmoid(-logOdds);
      // d logOdds / dp = 1 + e^p / (1 - e^p) = -1 / expm1(p)
      dpc = -1 + dOdds * (-1 / Math.expm1(pc));
      dpr = dOdds * (1 / Math.expm1(pr));
      rewardChosen = beta * pc;
      rewardRejected = beta * pr;
      break;
    }
    case "simpo": {
      const z = beta * (pc - pr) - s.simpoGamma;
      loss = -logSigmoid(z);
      dpc = -beta * sigmoid(-z);
      dpr = beta * sigmoid(-z);
      rewardChosen = beta * pc;
      rewardRejected = beta * pr;
      break;
    }
  }
  if (s.ftx > 0) {
    // the chosen answer's mean NLL, whatever the loss averages
    loss += s.ftx * (-x.chosen / x.chosenTokens);
    dpc += (s.ftx * -nc) / x.chosenTokens;
  }
  return {
    loss,
    dChosen: dpc / nc,
    dRejected: dpr / nr,
    rewardChosen,
    rewardRejected,
    logpChosen: pc,
    logpRejected: pr,
  };
}
