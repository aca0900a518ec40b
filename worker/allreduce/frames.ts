// Length-prefixed frames on a byte stream: a 4-byte big-endian length, then that many bytes. A frame
// that lies inside one received buffer is passed on as a view (no copy); one that spans reads is
// gathered into a fresh buffer, which starts 4-byte aligned so a chunk's floats decode as a view.

export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export function framePrefix(length: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, length);
  return p;
}

export class FrameReader {
  private header = new Uint8Array(4);
  private headerFill = 0;
  private frame: Uint8Array | null = null; // being gathered across reads
  private frameFill = 0;

  constructor(private readonly onFrame: (frame: Uint8Array) => void) {}

  /** Feeds bytes from the stream; throws RangeError on a frame over MAX_FRAME_BYTES. */
  push(buf: Uint8Array): void {
    let pos = 0;
    while (pos < buf.length) {
      if (this.frame) {
        const take = Math.min(this.frame.length - this.frameFill, buf.length - pos);
        this.frame.set(buf.subarray(pos, pos + take), this.frameFill);
        this.frameFill += take;
        pos += take;
        if (this.frameFill === this.frame.length) {
          const done = this.frame;
          this.frame = null;
          this.onFrame(done);
        }
        continue;
      }
      if (this.headerFill === 0 && buf.length - pos >= 4) {
        const length = new DataView(buf.buffer, buf.byteOffset + pos, 4).getUint32(0);
        pos += 4;
        if (buf.length - pos >= length) {
          this.onFrame(buf.subarray(pos, pos + length)); // whole frame in this read: a view
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

  private startFrame(length: number): void {
    if (length > MAX_FRAME_BYTES) throw new RangeError(`frame of ${length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
    this.frame = new Uint8Array(length);
    this.frameFill = 0;
    if (length === 0) {
      this.frame = null;
      this.onFrame(new Uint8Array(0));
    }
  }
}
