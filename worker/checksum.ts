// A checksum of the weights' bits: every rank applies the same update to the same all-reduced gradient,
// so the weights must stay bit-identical; the coordinator compares these periodically.
export function weightsChecksum(params: Float32Array): string {
  const words = new Uint32Array(params.buffer, params.byteOffset, params.length);
  // Two independent 32-bit multiply-xor lanes: cheap, and any flipped bit changes the result.
  let a = 0x811c9dc5 | 0;
  let b = 0x9e3779b9 | 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    a = Math.imul(a ^ w, 0x01000193);
    b = Math.imul(b ^ (w + i), 0x85ebca6b) ^ (b >>> 13);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}
