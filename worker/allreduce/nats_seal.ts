// Sealing of a ring's NATS messages with the ring's secret. Every worker's NATS user may use the ring
// subjects, so without a seal another worker could read a ring's chunks (gradients of the training data)
// and publish chunks or acks of its own into it. AES-256-GCM with a key derived from the secret and the
// message's subject both hides the content and proves that the sender holds the secret; binding the
// subject means a sealed message replayed onto another edge or kind does not open.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface Seal {
  /** nonce || ciphertext || tag, bound to `subject` */
  seal(subject: string, plain: Uint8Array): Uint8Array;
  /** The plain bytes, or undefined when the message was not sealed with this ring's secret for `subject`. */
  open(subject: string, sealed: Uint8Array): Uint8Array | undefined;
}

export function ringSeal(secret: Uint8Array): Seal {
  const key = Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), "ringtune ring nats seal v1", 32));
  return {
    seal(subject, plain) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, nonce);
      cipher.setAAD(Buffer.from(subject));
      const body = cipher.update(plain);
      const rest = cipher.final();
      return Buffer.concat([nonce, body, rest, cipher.getAuthTag()]);
    },
    open(subject, sealed) {
      if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
      const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, NONCE_BYTES));
        decipher.setAAD(Buffer.from(subject));
        decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
        const body = decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES));
        return Buffer.concat([body, decipher.final()]);
      } catch {
        return undefined;
      }
    },
  };
}

/** No secret (a ring run by hand or by older tests): messages go as they are. */
export const NO_SEAL: Seal = { seal: (_s, plain) => plain, open: (_s, sealed) => sealed };
