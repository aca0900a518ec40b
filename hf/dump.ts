// One fp32 forward + backward whose every output is kept: the loss, the logits and each parameter's
// gradient under its HF name + ".grad". This is what `ringtune dump` writes and what the reference
// fixtures are compared with, so a user can check ringtune against another implementation.
import type { NativeBatch, NativeModel, StepResult } from "../native/js/addon.js";
import type { WriteTensor } from "./safetensors.js";

export interface Dump {
  result: StepResult;
  /** loss [1], logits [rows, T, vocab], then `<param>.grad` in parameter order; views of native memory */
  tensors: (WriteTensor & { data: Float32Array })[];
}

export async function forwardBackwardDump(model: NativeModel, batch: NativeBatch, vocabSize: number): Promise<Dump> {
  await model.zeroGrad();
  const result = await model.forwardBackward(batch, { backward: true, keepLogits: true });
  if (result.targets === 0) throw new Error("the batch has no targets (every label is -100): the loss is undefined");
  const logits = model.logits();
  const want = batch.rows * batch.seqLen * vocabSize;
  if (logits.length !== want) {
    throw new Error(`native logits() returned ${logits.length} values, expected rows*T*vocab = ${want}`);
  }
  const grads = model.gradData();
  const tensors: (WriteTensor & { data: Float32Array })[] = [
    { name: "loss", shape: [1], dtype: "F32", data: Float32Array.of(result.loss) },
    { name: "logits", shape: [batch.rows, batch.seqLen, vocabSize], dtype: "F32", data: logits },
  ];
  for (const p of model.params()) {
    tensors.push({
      name: `${p.name}.grad`,
      shape: p.shape,
      dtype: "F32",
      data: grads.subarray(p.offset, p.offset + p.size),
    });
  }
  return { result, tensors };
}
