/**
 * The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and
 * 2) as a pure, incremental parser: bytes in, a state out, no sockets. A load
 * balancer in front of the server sends the header first on each connection
 * to say who the client is; the listener (`./proxy-acceptor.ts`) feeds it the
 * first bytes of each accepted connection.
 *
 * Contract:
 * - {@link ProxyHeaderParser.push} takes any split of the input (one byte at
 *   a time, or the header and what follows it in one chunk) and returns how
 *   many bytes of the chunk belong to the header; it never takes a byte past
 *   the header's end, so what follows is the application's.
 * - {@link ProxyHeaderParser.wanted} is how many more bytes the header has
 *   at least: reading no more than that never reads past its end, which is
 *   what lets the listener leave every byte after the header in the engine.
 * - Bounded: a v1 line is at most {@link V1_MAX_BYTES}; a v2 header at most
 *   {@link V2_MAX_BYTES} (a sane cap below the spec's 16 + 65,535). The
 *   parser keeps at most {@link V1_MAX_BYTES} bytes of its own whatever the
 *   header claims: v2 TLVs are counted and skipped, never stored.
 * - Strict: anything the spec does not allow is an error with a message that
 *   names it; the first offending byte decides (no resynchronisation).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Endpoint } from '../../engines/contract.js';

/** Which headers a listener accepts. */
export type ProxyProtocol = 'v1' | 'v2' | 'any';

export const PROXY_PROTOCOLS: readonly ProxyProtocol[] = ['v1', 'v2', 'any'];

/** The spec's bound on a v1 line, "PROXY" to CRLF included. */
export const V1_MAX_BYTES = 107;

/**
 * Cap on a whole v2 header (16 fixed bytes, the addresses, the TLVs). The
 * spec allows 16 + 65,535; balancers send far less (HAProxy's SSL and
 * unique-id TLVs, AWS's VPC endpoint id: a few hundred bytes at most).
 */
export const V2_MAX_BYTES = 4096;

/** The 12-byte v2 signature. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

const V2_FIXED = 16;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Shortest v1 line: `PROXY UNKNOWN\r\n`. */
const V1_MIN_BYTES = 15;
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;

/** A parsed header. `source` null: the connection's own addresses stand (LOCAL, UNKNOWN, UNSPEC, UNIX). */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** `local`: a v2 LOCAL header (the balancer's own health check). */
  readonly command: 'proxy' | 'local';
  /** The client, as the balancer saw it. */
  readonly source: Endpoint | null;
  /** The address the client connected to (the balancer's frontend). */
  readonly destination: Endpoint | null;
  /** Bytes the header took on the wire. */
  readonly length: number;
}

export type ProxyParseState = 'more' | 'done' | 'error';

/** v1 field minimum lengths after `PROXY TCPx `: source, destination, source port, destination port. */
const V1_FIELD_MIN: Readonly<Record<'TCP4' | 'TCP6', readonly number[]>> = {
  TCP4: [7, 7, 1, 1],
  TCP6: [2, 2, 1, 1],
};

const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

/** One connection's header, fed as its bytes arrive. */
export class ProxyHeaderParser {
  readonly #accept: ProxyProtocol;
  #state: ProxyParseState = 'more';
  #header: ProxyHeader | null = null;
  #error = '';
  /** 0: not known yet; 1 or 2 once the first byte says. */
  #version: 0 | 1 | 2 = 0;
  /** v1: the line so far; v2: the fixed part and the address block. Allocated on the first byte. */
  #bytes: Buffer | null = null;
  #have = 0;
  /** v2: header length from its fixed part (16 + len), once known. */
  #v2Total = 0;
  /** v2: bytes of the address block kept (the rest, TLVs, are skipped). */
  #v2Keep = 0;

  constructor(accept: ProxyProtocol = 'any') {
    this.#accept = accept;
  }

  get state(): ProxyParseState {
    return this.#state;
  }

  /** The header, once {@link state} is `done`. */
  get header(): ProxyHeader | null {
    return this.#header;
  }

  /** What was wrong, once {@link state} is `error`. */
  get error(): string {
    return this.#error;
  }

  /** Bytes taken so far. */
  get consumed(): number {
    return this.#have;
  }

  /**
   * At least how many more bytes the header has (≥ 1 while `more`, 0
   * otherwise): a read of at most this many never passes its end.
   */
  get wanted(): number {
    if (this.#state !== 'more') return 0;
    const have = this.#have;
    if (this.#version === 0) return this.#accept === 'v2' ? V2_FIXED : V1_MIN_BYTES;
    if (this.#version === 2) return have < V2_FIXED ? V2_FIXED - have : this.#v2Total - have;
    return this.#v1Wanted();
  }

  /**
   * Feeds `chunk`; returns how many of its bytes belong to the header (all
   * of them while `more`; fewer once `done`: the rest follows the header).
   * After `done` or `error` it takes nothing.
   */
  push(chunk: Uint8Array): number {
    let i = 0;
    const n = chunk.length;
    while (i < n && this.#state === 'more') {
      if (this.#version === 0) this.#start(chunk[i] as number);
      else if (this.#version === 1) {
        this.#v1Byte(chunk[i] as number);
        i++;
      } else i += this.#v2Bytes(chunk, i);
    }
    return i;
  }

  #fail(message: string): void {
    this.#state = 'error';
    this.#error = message;
    this.#bytes = null;
  }

  #start(first: number): void {
    if (first === 0x50 /* P */ && this.#accept !== 'v2') {
      this.#version = 1;
      this.#bytes = Buffer.allocUnsafe(V1_MAX_BYTES);
    } else if (first === CR && this.#accept !== 'v1') {
      this.#version = 2;
      this.#bytes = Buffer.allocUnsafe(V2_FIXED + 36);
    } else {
      const expected =
        this.#accept === 'v1'
          ? 'a v1 header ("PROXY ...")'
          : this.#accept === 'v2'
            ? 'a v2 header (its 12-byte signature)'
            : 'a v1 or v2 header';
      this.#fail(
        `the connection did not start with a PROXY protocol header (expected ${expected}, first byte 0x${first.toString(16).padStart(2, '0')})`,
      );
    }
  }

  // ---- v1: "PROXY TCP4|TCP6|UNKNOWN ...\r\n" ----

  #v1Byte(b: number): void {
    const bytes = this.#bytes as Buffer;
    const at = this.#have;
    if (at > 0 && bytes[at - 1] === CR) {
      if (b !== LF) {
        this.#fail('v1 header: CR not followed by LF');
        return;
      }
      bytes[at] = b;
      this.#have = at + 1;
      this.#v1Line();
      return;
    }
    if (at < V1_PREFIX.length) {
      if (b !== V1_PREFIX[at]) {
        this.#fail('v1 header: it must begin with "PROXY " (one space)');
        return;
      }
    } else if (b === LF) {
      this.#fail('v1 header: LF without CR (the line must end with CRLF)');
      return;
    } else if (b !== CR && (b < SPACE || b > 0x7e)) {
      this.#fail(`v1 header: byte 0x${b.toString(16).padStart(2, '0')} is not printable ASCII`);
      return;
    }
    // The CRLF must still fit: a CR at index 105 at the latest, LF at 106.
    if (at > (b === CR ? V1_MAX_BYTES - 2 : V1_MAX_BYTES - 3)) {
      this.#fail(`v1 header: no CRLF within ${V1_MAX_BYTES} bytes`);
      return;
    }
    bytes[at] = b;
    this.#have = at + 1;
  }

  /** Lower bound on the bytes left in a v1 line, from the fields seen so far. */
  #v1Wanted(): number {
    const bytes = this.#bytes as Buffer;
    const have = this.#have;
    if (bytes[have - 1] === CR) return 1;
    if (have < 11) return Math.max(V1_MIN_BYTES - have, 2);
    const proto = bytes.toString('latin1', 6, 10);
    if (proto !== 'TCP4' && proto !== 'TCP6') return 2;
    const mins = V1_FIELD_MIN[proto];
    let field = 0;
    let len = 0;
    for (let i = 11; i < have; i++) {
      if (bytes[i] === SPACE) {
        field++;
        len = 0;
      } else len++;
    }
    if (field >= mins.length) return 2;
    let need = Math.max(0, (mins[field] as number) - len) + 2;
    for (let f = field + 1; f < mins.length; f++) need += 1 + (mins[f] as number);
    return need;
  }

  #v1Line(): void {
    const length = this.#have;
    const line = (this.#bytes as Buffer).toString('latin1', 0, length - 2);
    const parts = line.split(' ');
    const proto = parts[1];
    if (proto === 'UNKNOWN') {
      // The spec: whatever follows UNKNOWN up to CRLF is to be ignored.
      this.#done({ version: 1, command: 'proxy', source: null, destination: null, length });
      return;
    }
    if (proto !== 'TCP4' && proto !== 'TCP6') {
      this.#fail(
        `v1 header: unknown protocol ${JSON.stringify(proto ?? '')} (TCP4, TCP6 or UNKNOWN)`,
      );
      return;
    }
    if (parts.length !== 6) {
      this.#fail(
        'v1 header: expected "PROXY TCPx <source> <destination> <source port> <destination port>" with single spaces',
      );
      return;
    }
    const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
    const family = proto === 'TCP4' ? 'IPv4' : 'IPv6';
    const valid = proto === 'TCP4' ? isIPv4 : isPlainIPv6;
    if (!valid(src) || !valid(dst)) {
      this.#fail(`v1 header: ${proto} needs two ${family} addresses`);
      return;
    }
    const sourcePort = parsePort(sport);
    const destinationPort = parsePort(dport);
    if (sourcePort < 0 || destinationPort < 0) {
      this.#fail('v1 header: ports must be decimal 0-65535 without leading zeros');
      return;
    }
    this.#done({
      version: 1,
      command: 'proxy',
      source: { address: src, port: sourcePort, family },
      destination: { address: dst, port: destinationPort, family },
      length,
    });
  }

  // ---- v2: signature, version/command, family/transport, length, addresses, TLVs ----

  /** Takes bytes of a v2 header from `chunk` at `from`; returns how many. */
  #v2Bytes(chunk: Uint8Array, from: number): number {
    const bytes = this.#bytes as Buffer;
    if (this.#have < V2_FIXED) {
      const at = this.#have;
      const b = chunk[from] as number;
      if (at < V2_SIGNATURE.length) {
        if (b !== V2_SIGNATURE[at]) {
          this.#fail('v2 header: bad signature');
          return 1;
        }
      } else if (at === 12) {
        if (b >> 4 !== 2) {
          this.#fail(`v2 header: version ${b >> 4} (only 2 is defined)`);
          return 1;
        }
        if ((b & 0xf) > 1) {
          this.#fail(`v2 header: command ${b & 0xf} (0 LOCAL or 1 PROXY)`);
          return 1;
        }
      }
      bytes[at] = b;
      this.#have = at + 1;
      if (this.#have === V2_FIXED) this.#v2Fixed();
      return 1;
    }
    const take = Math.min(chunk.length - from, this.#v2Total - this.#have);
    const keepUntil = V2_FIXED + this.#v2Keep;
    if (this.#have < keepUntil) {
      const copy = Math.min(take, keepUntil - this.#have);
      bytes.set(chunk.subarray(from, from + copy), this.#have);
    }
    this.#have += take;
    if (this.#have === this.#v2Total) this.#v2Done();
    return take;
  }

  /** The fixed 16 bytes are in: check the family against the length and bound the rest. */
  #v2Fixed(): void {
    const bytes = this.#bytes as Buffer;
    const local = ((bytes[12] as number) & 0xf) === 0;
    const fam = bytes[13] as number;
    const len = bytes.readUInt16BE(14);
    this.#v2Total = V2_FIXED + len;
    if (this.#v2Total > V2_MAX_BYTES) {
      this.#fail(`v2 header: ${this.#v2Total} bytes, more than the ${V2_MAX_BYTES} accepted`);
      return;
    }
    if (!local) {
      const family = fam >> 4;
      const transport = fam & 0xf;
      if (family > 3 || transport > 2) {
        this.#fail(`v2 header: unknown address family/transport 0x${fam.toString(16)}`);
        return;
      }
      if (family !== 0 && transport === 2) {
        this.#fail('v2 header: a datagram (UDP) header on a stream connection');
        return;
      }
      if (family !== 0 && family !== 3 && transport === 0) {
        this.#fail('v2 header: an IP address family needs the STREAM transport');
        return;
      }
      const need = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
      if (len < need) {
        this.#fail(`v2 header: length ${len} is too short for its addresses (${need} bytes)`);
        return;
      }
      // UNIX addresses are not kept: a TCP listener reports the connection's own then.
      this.#v2Keep = family === 1 || family === 2 ? need : 0;
    }
    if (len === 0) this.#v2Done();
  }

  #v2Done(): void {
    const bytes = this.#bytes as Buffer;
    const length = this.#v2Total;
    const local = ((bytes[12] as number) & 0xf) === 0;
    const family = (bytes[13] as number) >> 4;
    if (local || (family !== 1 && family !== 2)) {
      this.#done({
        version: 2,
        command: local ? 'local' : 'proxy',
        source: null,
        destination: null,
        length,
      });
      return;
    }
    const a = V2_FIXED;
    const source: Endpoint =
      family === 1
        ? { address: ipv4(bytes, a), port: bytes.readUInt16BE(a + 8), family: 'IPv4' }
        : { address: ipv6(bytes, a), port: bytes.readUInt16BE(a + 32), family: 'IPv6' };
    const destination: Endpoint =
      family === 1
        ? { address: ipv4(bytes, a + 4), port: bytes.readUInt16BE(a + 10), family: 'IPv4' }
        : { address: ipv6(bytes, a + 16), port: bytes.readUInt16BE(a + 34), family: 'IPv6' };
    this.#done({ version: 2, command: 'proxy', source, destination, length });
  }

  #done(header: ProxyHeader): void {
    this.#state = 'done';
    this.#header = header;
    this.#bytes = null;
  }
}

/** IPv6 as v1 may carry it: no zone index (`%eth0`), which names an interface of the sender. */
function isPlainIPv6(s: string): boolean {
  return !s.includes('%') && isIPv6(s);
}

function parsePort(s: string): number {
  if (!PORT.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * RFC 5952 text of 16 address bytes (the longest run of two or more zero
 * groups as `::`, lower-case hex), with an IPv4-mapped address in Node's
 * dotted form (`::ffff:127.0.0.1`), as `socket.remoteAddress` gives it.
 */
export function ipv6(b: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + 2 * i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${ipv4(b, at + 12)}`;
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}
