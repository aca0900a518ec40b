// Shared by the native-format tests: tiny configs, the HF parameter table derived independently of
// the addon, and a pure-TS safetensors writer for crafting good and bad files byte by byte.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildSafetensorsHeader } from "../../hf/safetensors.js";

export function tempDir(prefix = "ringtune-test-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** A two-layer Llama with GQA, small enough that every test runs in milliseconds. */
export function tinyLlamaConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 32,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: "silu",
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    ...overrides,
  };
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, JSON.stringify(value, null, 2));
}

/** The HF parameter names and shapes of a Llama/Qwen2 config, written out from the HF modeling code. */
export function hfParamShapes(cfg: Record<string, unknown>): Map<string, number[]> {
  const n = (k: string) => cfg[k] as number;
  const V = n("vocab_size"),
    C = n("hidden_size"),
    I = n("intermediate_size"),
    L = n("num_hidden_layers");
  const H = n("num_attention_heads"),
    KV = (cfg.num_key_value_heads as number | undefined) ?? H;
  const D = (cfg.head_dim as number | undefined) ?? C / H;
  const qwen = cfg.model_type === "qwen2";
  const qkvBias = qwen || cfg.attention_bias === true;
  const oBias = !qwen && cfg.attention_bias === true;
  const mlpBias = !qwen && cfg.mlp_bias === true;
  const out = new Map<string, number[]>();
  out.set("model.embed_tokens.weight", [V, C]);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    out.set(`${p}.input_layernorm.weight`, [C]);
    out.set(`${p}.self_attn.q_proj.weight`, [H * D, C]);
    out.set(`${p}.self_attn.k_proj.weight`, [KV * D, C]);
    out.set(`${p}.self_attn.v_proj.weight`, [KV * D, C]);
    if (qkvBias) {
      out.set(`${p}.self_attn.q_proj.bias`, [H * D]);
      out.set(`${p}.self_attn.k_proj.bias`, [KV * D]);
      out.set(`${p}.self_attn.v_proj.bias`, [KV * D]);
    }
    out.set(`${p}.self_attn.o_proj.weight`, [C, H * D]);
    if (oBias) out.set(`${p}.self_attn.o_proj.bias`, [C]);
    out.set(`${p}.post_attention_layernorm.weight`, [C]);
    out.set(`${p}.mlp.gate_proj.weight`, [I, C]);
    out.set(`${p}.mlp.up_proj.weight`, [I, C]);
    out.set(`${p}.mlp.down_proj.weight`, [C, I]);
    if (mlpBias) {
      out.set(`${p}.mlp.gate_proj.bias`, [I]);
      out.set(`${p}.mlp.up_proj.bias`, [I]);
      out.set(`${p}.mlp.down_proj.bias`, [C]);
    }
  }
  out.set("model.norm.weight", [C]);
  if (cfg.tie_word_embeddings !== true) out.set("lm_head.weight", [V, C]);
  return out;
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file written in TS (no addon), so tests can store any dtype and break any byte. */
export function rawSafetensors(tensors: RawTensor[]): Buffer {
  const header = buildSafetensorsHeader(tensors, { format: "pt" });
  return Buffer.concat([header, ...tensors.map((t) => t.bytes)]);
}

export const f32Bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Float -> IEEE half, exact for the values the tests use (k/256, |k| <= 256). */
export function toF16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const m = Math.abs(x);
  const e = Math.floor(Math.log2(m));
  if (e < -14) throw new Error(`toF16Bits: ${x} would be subnormal`);
  const frac = m / 2 ** e - 1;
  const mant = Math.round(frac * 1024);
  if (mant / 1024 !== frac) throw new Error(`toF16Bits: ${x} is not exact in half precision`);
  return sign | ((e + 15) << 10) | mant;
}

/** Reference float32 -> bfloat16 bits, round to nearest, ties to even (no NaN handling needed here). */
export function toBf16Bits(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0]!;
  const lsb = (u >>> 16) & 1;
  return ((u + 0x7fff + lsb) >>> 16) & 0xffff;
}

export const bf16ToF32 = (bits: number): number => new Float32Array(Uint32Array.of(bits << 16).buffer)[0]!;

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
