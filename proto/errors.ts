// Errors raised while decoding wire messages: one class per failure, each with `name` set.

/** The peer speaks another protocol version; nothing in the message is trusted. */
export class ProtocolVersionError extends Error {
  override name = "ProtocolVersionError";
  constructor(
    readonly messageType: string,
    readonly expected: number,
    readonly actual: unknown,
  ) {
    super(
      `${messageType}: protocol version mismatch: this process speaks v${expected}, the peer sent ` +
        `${typeof actual === "number" ? `v${actual}` : `no version (${JSON.stringify(actual)})`}; ` +
        `run the same ringtune version on every node`,
    );
  }
}

/** The bytes are not msgpack, or the message does not match its schema (the message names the key). */
export class ProtocolDecodeError extends Error {
  override name = "ProtocolDecodeError";
  constructor(
    readonly messageType: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${messageType}: ${detail}`, options);
  }
}
