#!/usr/bin/env bash
# The product on the GPU, run by run_device_checks.sh (its e2e.txt): each check prints one "CHECK <name>: ok",
# "CHECK <name>: FAIL ..." or "CHECK <name>: NOT RUN ..." line. Needs node and `make build` in this tree.
#   DEVICE: the --device checked (default cuda; cuda-emu for the dry run, which needs no GPU)
#   RT_LIBS: library folders for ringtune's own processes (the bundle's, cuBLASLt's); RINGTUNE_CUBLASLT.
#   RINGTUNE_CUDA_LIBRARY: the GPU library, when the addon of this tree was built without nvcc (the bundle's)
#   EVIDENCE=0: list the evidence tests without running them (the dry run: `make test` runs them on cuda-emu)
#   E2E_TREE: the product's tree to run in instead of this checkout: the bundle's, unpacked by
#     run_device_checks.sh (deploy/gpu/bundle.sh: its bin/ holds the node and nats-server used, for a GPU host
#     that has neither)
# The evidence: `dump` against the CPU first (its own check, quick, with the worst difference), then every test
# file that runs on the evidence device (test/helpers/evidence_device.ts) with RINGTUNE_TEST_DEVICE=$DEVICE: the
# 20-step job against a CPU worker's losses, checkpoints resumed across devices, a ring mixing devices, and the
# LoRA and serving files as they adopt that device; one CHECK line per test.
# Exit status 0 only when every check ran and passed.
set -uo pipefail
if [ -n "${E2E_TREE:-}" ]; then
  cd "$E2E_TREE" || exit 1
  export PATH="$PWD/bin:$PATH" NATS_SERVER_BIN="$PWD/bin/nats-server"
else
  cd "$(dirname "$0")/../.."
fi
echo "tree: $PWD; node: $(command -v node) $(node --version 2>&1)"
DEVICE=${DEVICE:-cuda}
CLI=dist/cli/ringtune.js
W=$(mktemp -d /tmp/ringtune-e2e.XXXXXX)
status=0
rt() { env LD_LIBRARY_PATH="${RT_LIBS:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" node "$CLI" "$@"; }
check() { # check NAME ok|FAIL|NOT RUN [detail]
  echo "CHECK $1: $2${3:+ ($3)}"
  [ "$2" = ok ] || status=1
}

# What the driver and the GPU library say about device 0, as --device cuda sees them.
echo "probe: $(env LD_LIBRARY_PATH="${RT_LIBS:-}" node -e '
  import("./dist/native/js/addon.js").then(({ loadAddon }) => {
    const a = loadAddon();
    console.log(JSON.stringify({ probe: a.probeCuda(0), library: a.cudaLibrary?.() }));
  });')"

# A small Llama (GQA, two packed segments in a row) and one batch, the same for both devices.
cat > "$W/config.json" << 'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
 "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
 "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000, "max_position_embeddings": 256,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
JSON
node -e '
  const T = 16, rows = 2, ids = [], labels = [], pos = [], seg = [];
  for (let r = 0; r < rows; r++) {
    const i = [], l = [], p = [], s = [];
    for (let t = 0; t < T; t++) {
      i.push((r * 131 + t * 17) % 512); l.push(t % 7 === 0 ? -100 : (r * 7 + t * 29) % 512);
      p.push(t < 10 ? t : t - 10); s.push(t < 10 ? 1 : 2);
    }
    ids.push(i); labels.push(l); pos.push(p); seg.push(s);
  }
  require("fs").writeFileSync(process.argv[1], JSON.stringify({ input_ids: ids, labels, position_ids: pos, segment_ids: seg }));
' "$W/batch.json"
rt model init --config "$W/config.json" --seed 7 --out "$W/model" > /dev/null

# 1. dump: loss, logits and every gradient on the device (fp32 checking mode) against the CPU, each element
#    within 1e-5 of its tensor's largest magnitude (the bound of the emulator's test, dump_cuda_emu.test.ts).
rt dump --model "$W/model" --batch "$W/batch.json" --out "$W/cpu.safetensors" --device cpu 2>&1 | tail -1
if rt dump --model "$W/model" --batch "$W/batch.json" --out "$W/dev.safetensors" --device "$DEVICE" 2> "$W/dev_dump.err"; then
  cmp=$(node --input-type=module -e '
    import { readSafetensorsHeader, readTensorsF32 } from "./dist/hf/safetensors.js";
    const read = async (f) => { const h = await readSafetensorsHeader(f); return readTensorsF32(h, [...h.tensors.values()].map((t) => t.name)); };
    const [a, b] = await Promise.all(process.argv.slice(1).map(read));
    let worst = 0, where = "";
    for (const [name, x] of a) {
      const y = b.get(name);
      if (!y || y.length !== x.length) { console.log(`FAIL ${name} missing or misshapen`); process.exit(0); }
      const scale = Math.max(1e-30, ...x.map(Math.abs));
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i] - y[i]) / scale;
        if (!(d <= worst)) { worst = d; where = `${name}[${i}]`; }
      }
    }
    console.log(`${worst <= 1e-5 ? "ok" : "FAIL"} max diff ${worst.toExponential(2)} of the tensor largest at ${where}`);
  ' "$W/cpu.safetensors" "$W/dev.safetensors")
  case $cmp in ok*) check "dump $DEVICE fp32 vs cpu" ok "${cmp#ok }" ;; *) check "dump $DEVICE fp32 vs cpu" FAIL "$cmp" ;; esac
else
  check "dump $DEVICE fp32 vs cpu" FAIL "$(grep -m1 '^ringtune' "$W/dev_dump.err" || tail -1 "$W/dev_dump.err")"
fi

# 2. the evidence tests on the device, one CHECK line per test (TAP: "ok N - name", "not ok N - name", skips)
# (the files that import the device helper, directly or through the device-ring helper)
mapfile -t files < <(grep -rlE --include='*.test.js' '(evidence_device|device_rings)\.js' dist/test | sort)
[ ${#files[@]} -gt 0 ] || check "evidence tests" FAIL "no test file under dist/test runs on the evidence device"
if [ "${EVIDENCE:-1}" = 0 ]; then
  for f in "${files[@]}"; do echo "CHECK $f: NOT RUN (dry run: make test runs it on cuda-emu)"; done
  rm -rf "$W"
  exit $status
fi
for f in "${files[@]}"; do
  env LD_LIBRARY_PATH="${RT_LIBS:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RINGTUNE_TEST_DEVICE="$DEVICE" \
    node --test --test-reporter=tap "$f" > "$W/tap.txt" 2>&1
  rc=$?
  n=0
  while IFS= read -r line; do
    n=$((n + 1))
    name=${line#*- }
    case $line in
      "not ok"*) check "$name" FAIL "$f" ;;
      *"# SKIP"*) check "${name%% # SKIP*}" "NOT RUN" "skipped: ${name#* # SKIP }" ;;
      *) check "$name" ok ;;
    esac
  done < <(grep -E '^(not )?ok [0-9]+ - ' "$W/tap.txt")
  [ "$n" -gt 0 ] || check "$f" FAIL "exit status $rc, no test result: $(tail -3 "$W/tap.txt" | tr '\n' ' ')"
  grep -A3 -E '^ *(error|expected|actual):' "$W/tap.txt" | head -20 # what failed, for the summary's reader
done
rm -rf "$W"
exit $status
