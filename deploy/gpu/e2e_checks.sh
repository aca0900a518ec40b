#!/usr/bin/env bash
# The product on the GPU, run by run_device_checks.sh (its e2e.txt): each check prints one "CHECK <name>: ok",
# "CHECK <name>: FAIL ..." or "CHECK <name>: NOT RUN ..." line. Needs node and `make build` in this tree.
#   RT_LIBS: library folders for ringtune's own processes (the bundle's, cuBLASLt's); RINGTUNE_CUBLASLT.
# Exit status 0 only when every check ran and passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
CLI=dist/cli/ringtune.js
W=$(mktemp -d /tmp/ringtune-e2e.XXXXXX)
status=0
rt() { env LD_LIBRARY_PATH="${RT_LIBS:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" node "$CLI" "$@"; }
check() {  # check NAME ok|FAIL|NOT RUN [detail]
  echo "CHECK $1: $2${3:+ ($3)}"
  [ "$2" = ok ] || status=1
}

# What the driver says about device 0, as --device cuda sees it.
echo "probe: $(env LD_LIBRARY_PATH="${RT_LIBS:-}" node -e '
  import("./dist/native/js/addon.js").then(({ loadAddon }) => console.log(JSON.stringify(loadAddon().probeCuda(0))));')"

# A small Llama (GQA, two packed segments in a row) and one batch, the same for both devices.
cat > "$W/config.json" << 'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 128,
 "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000, "max_position_embeddings": 256,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
JSON
node -e '
  const T = 64, rows = 2, ids = [], labels = [], pos = [], seg = [];
  for (let r = 0; r < rows; r++) {
    const i = [], l = [], p = [], s = [];
    for (let t = 0; t < T; t++) {
      i.push((r * 131 + t * 17) % 512); l.push(t % 7 === 0 ? -100 : (r * 7 + t * 29) % 512);
      p.push(t < 40 ? t : t - 40); s.push(t < 40 ? 1 : 2);
    }
    ids.push(i); labels.push(l); pos.push(p); seg.push(s);
  }
  require("fs").writeFileSync(process.argv[1], JSON.stringify({ input_ids: ids, labels, position_ids: pos, segment_ids: seg }));
' "$W/batch.json"
rt model init --config "$W/config.json" --seed 7 --out "$W/model" > /dev/null

# 1. dump: loss, logits and every gradient, CUDA (fp32 checking mode) against the CPU within 1e-4 relative.
rt dump --model "$W/model" --batch "$W/batch.json" --out "$W/cpu.safetensors" --device cpu 2>&1 | tail -1
if rt dump --model "$W/model" --batch "$W/batch.json" --out "$W/cuda.safetensors" --device cuda 2> "$W/cuda_dump.err"; then
  cmp=$(node --input-type=module -e '
    import { readSafetensorsHeader, readTensorsF32 } from "./dist/hf/safetensors.js";
    const [a, b] = await Promise.all(process.argv.slice(1).map(async (f) => readTensorsF32(await readSafetensorsHeader(f))));
    let worst = 0, where = "";
    for (const [name, x] of a) {
      const y = b.get(name);
      if (!y || y.length !== x.length) { console.log(`FAIL ${name} missing or misshapen`); process.exit(0); }
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i] - y[i]) / (1e-6 + Math.abs(x[i]));
        if (!(d <= worst)) { worst = d; where = `${name}[${i}]`; }
      }
    }
    console.log(`${worst <= 1e-4 ? "ok" : "FAIL"} max relative diff ${worst.toExponential(2)} at ${where}`);
  ' "$W/cpu.safetensors" "$W/cuda.safetensors")
  case $cmp in ok*) check "dump cuda fp32 vs cpu" ok "${cmp#ok }" ;; *) check "dump cuda fp32 vs cpu" FAIL "$cmp" ;; esac
else
  check "dump cuda fp32 vs cpu" FAIL "$(grep -m1 '^ringtune' "$W/cuda_dump.err" || tail -1 "$W/cuda_dump.err")"
fi

# 2-6 train through a GPU worker; they need the CUDA model behind `ringtune worker --device cuda`.
for name in "20 AdamW steps on the GPU vs the CPU losses (bf16 tolerance)" "LoRA adapter on the GPU vs the CPU's" \
  "checkpoint written on the GPU resumed on a CPU worker" "a GPU and a CPU worker in one ring vs two CPU workers" \
  "generate --device cuda vs --device cpu (greedy ids)"; do
  check "$name" "NOT RUN" "the worker refuses --device cuda in this build: the CUDA model is not wired in yet"
done
rm -rf "$W"
exit $status
