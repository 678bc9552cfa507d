/**
 * A decoder of chunked response bodies (RFC 9112 §7.1), strict and pure: bytes in, body bytes
 * out through a callback, state kept between packets. Chunk-size lines and trailers are bounded;
 * a bad size, a bare CR or LF, data longer than its size or a malformed trailer is an
 * UPSTREAM_BAD_RESPONSE error. Trailers are checked and dropped (the response head is already out).
 */
import { UPSTREAM_BAD_RESPONSE, upstreamError } from './upstream-api';

const CRLF = Buffer.from('\r\n');
/** A chunk-size line: hex size, optional extensions; and the longest one accepted. */
const CHUNK_SIZE = /^([0-9a-fA-F]{1,13})(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?$/;
/** One trailer line without its CRLF. */
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*((?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[\t ]*$/;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

const enum State {
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

export class ChunkedDecoder {
  private state = State.Size;
  private remaining = 0;
  /** A framing line split over packets: its bytes so far. */
  private lineBuf: Buffer | undefined;
  private trailerBytes = 0;

  /** The last chunk and the trailers have been read: the body is complete. */
  get done(): boolean {
    return this.state === State.Done;
  }

  reset(): void {
    this.state = State.Size;
    this.remaining = 0;
    this.lineBuf = undefined;
    this.trailerBytes = 0;
  }

  /**
   * Consumes `buf` from `off` until it ends, the body is complete, or `stopped()` says the reader
   * went away (the callback may abort); returns the offset reached. Throws UPSTREAM_BAD_RESPONSE.
   */
  decode(buf: Buffer, off: number, onData: (chunk: Buffer) => void, stopped: () => boolean): number {
    while (off < buf.length && this.state !== State.Done && !stopped()) {
      if (this.state === State.Data) {
        const n = Math.min(this.remaining, buf.length - off);
        const chunk = buf.subarray(off, off + n);
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = State.DataEnd;
        onData(chunk);
        continue;
      }
      const line = this.readLine(buf, off);
      if (line === undefined) return buf.length;
      off = line.next;
      this.onLine(line.text);
    }
    return off;
  }

  /** A CRLF-terminated line from the carried-over bytes plus `buf` at `off`, or undefined (bytes kept). */
  private readLine(buf: Buffer, off: number): { text: string; next: number } | undefined {
    const limit = this.state === State.Trailers ? MAX_TRAILER_BYTES : MAX_CHUNK_LINE;
    const carried = this.lineBuf;
    if (carried !== undefined && carried[carried.length - 1] === 0x0d && buf[off] === 0x0a) {
      this.lineBuf = undefined;
      return { text: carried.toString('latin1', 0, carried.length - 1), next: off + 1 };
    }
    const idx = buf.indexOf(CRLF, off);
    if (idx === -1) {
      const rest = buf.subarray(off);
      this.lineBuf = carried === undefined ? Buffer.from(rest) : Buffer.concat([carried, rest]);
      if (this.lineBuf.length > limit) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'chunk framing line too long');
      return undefined;
    }
    let text = buf.toString('latin1', off, idx);
    if (carried !== undefined) {
      text = carried.toString('latin1') + text;
      this.lineBuf = undefined;
    }
    if (text.length > limit) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'chunk framing line too long');
    return { text, next: idx + 2 };
  }

  private onLine(text: string): void {
    if (text.includes('\r') || text.includes('\n')) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'bare CR or LF in chunk framing');
    switch (this.state) {
      case State.DataEnd:
        if (text !== '') throw upstreamError(UPSTREAM_BAD_RESPONSE, 'chunk data longer than its size');
        this.state = State.Size;
        return;
      case State.Size: {
        const m = CHUNK_SIZE.exec(text);
        if (m === null) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'invalid chunk size');
        const size = parseInt(m[1], 16);
        if (size === 0) {
          this.state = State.Trailers;
          return;
        }
        this.remaining = size;
        this.state = State.Data;
        return;
      }
      case State.Trailers:
        if (text === '') {
          this.state = State.Done;
          return;
        }
        this.trailerBytes += text.length + 2;
        if (this.trailerBytes > MAX_TRAILER_BYTES) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'trailers too large');
        if (!HEADER_LINE.test(text)) throw upstreamError(UPSTREAM_BAD_RESPONSE, 'malformed trailer');
        return;
    }
  }
}
