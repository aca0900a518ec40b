// Length-prefixed frames on a byte stream: a 4-byte big-endian length, then that many bytes. Frames are
// lent to the callback, never allocated per frame: one that lies inside a received buffer at a 4-byte
// aligned offset is passed on as a view; one that spans reads, or lies unaligned, is gathered into a
// staging buffer that is reused for the next frame. Every frame starts 4-byte aligned, so a chunk's
// floats (padded to an aligned offset in the frame) decode as a view, not a copy.

export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export function framePrefix(length: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, length);
  return p;
}

export class FrameReader {
  private header = new Uint8Array(4);
  private headerFill = 0;
  private staging = new Uint8Array(0);
  private frameLength = -1; // of the frame being gathered into staging, or -1
  private frameFill = 0;

  /**
   * `onFrame` may read the frame only until it returns: its memory is reused. `maxFrameBytes` may be
   * lowered while a stream is not yet trusted, so a stranger cannot make us allocate a large buffer.
   */
  constructor(
    private readonly onFrame: (frame: Uint8Array) => void,
    public maxFrameBytes = MAX_FRAME_BYTES,
  ) {}

  /** Feeds bytes from the stream; throws RangeError on a frame over maxFrameBytes. */
  push(buf: Uint8Array): void {
    let pos = 0;
    while (pos < buf.length) {
      if (this.frameLength >= 0) {
        const take = Math.min(this.frameLength - this.frameFill, buf.length - pos);
        this.staging.set(buf.subarray(pos, pos + take), this.frameFill);
        this.frameFill += take;
        pos += take;
        if (this.frameFill === this.frameLength) {
          const length = this.frameLength;
          this.frameLength = -1;
          this.onFrame(this.staging.subarray(0, length));
        }
        continue;
      }
      if (this.headerFill === 0 && buf.length - pos >= 4) {
        const length = new DataView(buf.buffer, buf.byteOffset + pos, 4).getUint32(0);
        pos += 4;
        this.checkLength(length);
        if (buf.length - pos >= length && (buf.byteOffset + pos) % 4 === 0) {
          this.onFrame(buf.subarray(pos, pos + length)); // whole and aligned in this read: a view
          pos += length;
        } else {
          this.startFrame(length);
        }
        continue;
      }
      // The length itself is split across reads.
      this.header[this.headerFill++] = buf[pos++]!;
      if (this.headerFill === 4) {
        this.headerFill = 0;
        this.startFrame(new DataView(this.header.buffer).getUint32(0));
      }
    }
  }

  private checkLength(length: number): void {
    if (length > this.maxFrameBytes)
      throw new RangeError(`frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
  }

  private startFrame(length: number): void {
    this.checkLength(length);
    if (length === 0) return this.onFrame(new Uint8Array(0));
    if (this.staging.length < length) this.staging = new Uint8Array(length);
    this.frameLength = length;
    this.frameFill = 0;
  }
}
