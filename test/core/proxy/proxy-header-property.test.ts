/**
 * Property test of the PROXY header parser (fast-check): over a million
 * parses of generated headers, valid and broken, each split at every offset.
 *
 * - Valid headers come from proxy-protocol-js (test/support/proxy-headers.ts),
 *   followed by random application bytes: every split parses to the
 *   generator's addresses and takes exactly the header's bytes.
 * - Reading `wanted` bytes at a time, as the listener does, never reads past
 *   the header's end.
 * - Broken headers (a byte changed, bytes cut, random bytes): whatever the
 *   outcome, every split gives the outcome of the whole (same state, error,
 *   header, bytes taken), never more than the spec's bounds, and a prefix of
 *   a valid header is never done.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type ProxyHeader,
  ProxyHeaderParser,
  type ProxyProtocol,
  V1_MAX_BYTES,
  V2_MAX_BYTES,
} from '../../../src/core/proxy/proxy-header.js';
import type { Endpoint } from '../../../src/engines/contract.js';
import { canonicalIPv6, fullIPv6, v1Header, v2Header } from '../../support/proxy-headers.js';

/** Parses counted across the file: the test asks for at least a million. */
let parses = 0;

interface Outcome {
  state: string;
  error: string;
  header: ProxyHeader | null;
  taken: number;
}

function feed(accept: ProxyProtocol, parts: Uint8Array[]): Outcome {
  parses++;
  const parser = new ProxyHeaderParser(accept);
  let taken = 0;
  for (const part of parts) taken += parser.push(part);
  return { state: parser.state, error: parser.error, header: parser.header, taken };
}

/** Every two-part split of `bytes` gives the outcome of the whole; returns it. */
function splitInvariant(accept: ProxyProtocol, bytes: Uint8Array): Outcome {
  const whole = feed(accept, [bytes]);
  const expected = JSON.stringify(whole);
  for (let k = 0; k <= bytes.length; k++) {
    const split = feed(accept, [bytes.subarray(0, k), bytes.subarray(k)]);
    // A string compare per split; deepEqual only to show a difference.
    if (JSON.stringify(split) !== expected) {
      assert.deepEqual(split, whole, `split at ${k} of ${Buffer.from(bytes).toString('hex')}`);
    }
  }
  assert.ok(whole.taken <= Math.max(V1_MAX_BYTES, V2_MAX_BYTES));
  if (whole.state === 'done') {
    const h = whole.header as ProxyHeader;
    assert.equal(whole.taken, h.length);
    assert.ok(h.version === 1 ? h.length <= V1_MAX_BYTES : h.length <= V2_MAX_BYTES);
  } else {
    assert.equal(whole.taken, whole.state === 'more' ? bytes.length : whole.taken);
  }
  return whole;
}

/** Feeds `bytes` in reads of `wanted` bytes: none may pass the header's end (`length`). */
function readsStayInside(accept: ProxyProtocol, bytes: Uint8Array, length: number): void {
  parses++;
  const parser = new ProxyHeaderParser(accept);
  let at = 0;
  while (parser.state === 'more') {
    const want = parser.wanted;
    assert.ok(want >= 1 && at + want <= length, `read of ${want} at ${at} passes ${length}`);
    assert.equal(parser.push(bytes.subarray(at, at + want)), want);
    at += want;
  }
  assert.equal(parser.state, 'done', parser.error);
  assert.equal(at, length);
}

interface Case {
  readonly accept: ProxyProtocol;
  readonly header: Buffer;
  readonly source: Endpoint | null;
  readonly destination: Endpoint | null;
}

const port = fc.integer({ min: 0, max: 65535 });
const ipv4Bytes = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 });
const ipv6Bytes = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 16, maxLength: 16 });
const accepting = (version: 1 | 2) =>
  fc.constantFrom<ProxyProtocol>(version === 1 ? 'v1' : 'v2', 'any');

const v1Case: fc.Arbitrary<Case> = fc.oneof(
  fc.tuple(accepting(1), fc.ipV4(), fc.ipV4(), port, port).map(([accept, s, d, sp, dp]) => ({
    accept,
    header: v1Header('TCP4', s, d, sp, dp),
    source: { address: s, port: sp, family: 'IPv4' as const },
    destination: { address: d, port: dp, family: 'IPv4' as const },
  })),
  fc.tuple(accepting(1), fc.ipV6(), fc.ipV6(), port, port).map(([accept, s, d, sp, dp]) => ({
    accept,
    header: v1Header('TCP6', s, d, sp, dp),
    source: { address: s, port: sp, family: 'IPv6' as const },
    destination: { address: d, port: dp, family: 'IPv6' as const },
  })),
  fc.tuple(accepting(1), fc.stringMatching(/^[ -~]{0,80}$/)).map(([accept, rest]) => ({
    accept,
    header: Buffer.from(`PROXY UNKNOWN${rest.length > 0 ? ` ${rest}` : ''}\r\n`, 'latin1'),
    source: null,
    destination: null,
  })),
);

const tlvs = fc.uint8Array({ maxLength: 48 });

/** v2 PROXY headers over one family: `bytes` draws an address, `text` spells it as the parser should. */
function v2Addresses(
  bytes: fc.Arbitrary<number[]>,
  family: 'IPv4' | 'IPv6',
  text: (b: number[]) => string,
): fc.Arbitrary<Case> {
  return fc
    .tuple(accepting(2), bytes, bytes, port, port, tlvs)
    .map(([accept, s, d, sp, dp, t]) => ({
      accept,
      header: v2Header({
        command: 'proxy',
        source: s,
        destination: d,
        sourcePort: sp,
        destinationPort: dp,
        tlvs: t,
      }),
      source: { address: text(s), port: sp, family },
      destination: { address: text(d), port: dp, family },
    }));
}

const v2Case: fc.Arbitrary<Case> = fc.oneof(
  v2Addresses(ipv4Bytes, 'IPv4', (b) => b.join('.')),
  v2Addresses(ipv6Bytes, 'IPv6', fullIPv6),
  fc.tuple(accepting(2), fc.boolean(), tlvs).map(([accept, local, t]) => ({
    accept,
    header: v2Header({
      command: local ? 'local' : 'proxy',
      source: null,
      destination: null,
      sourcePort: 0,
      destinationPort: 0,
      tlvs: t,
    }),
    source: null,
    destination: null,
  })),
);

const validCase = fc.oneof(v1Case, v2Case);
const trailer = fc.uint8Array({ maxLength: 12 });

function sameEndpoint(actual: Endpoint | null, expected: Endpoint | null): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected);
    return;
  }
  assert.equal(actual.family, expected.family);
  assert.equal(actual.port, expected.port);
  if (expected.family === 'IPv6') {
    assert.equal(canonicalIPv6(actual.address), canonicalIPv6(expected.address));
  } else {
    assert.equal(actual.address, expected.address);
  }
}

test('over a million parses: valid headers split at every offset, broken ones split-invariant', () => {
  const started = performance.now();
  fc.assert(
    fc.property(validCase, trailer, (c, after) => {
      const bytes = Buffer.concat([c.header, after]);
      const outcome = splitInvariant(c.accept, bytes);
      assert.equal(outcome.state, 'done', outcome.error);
      assert.equal(outcome.taken, c.header.length);
      sameEndpoint(outcome.header?.source ?? null, c.source);
      sameEndpoint(outcome.header?.destination ?? null, c.destination);
      readsStayInside(c.accept, bytes, c.header.length);
      // A valid header cut short is waiting for the rest, never done.
      const cut = feed(c.accept, [c.header.subarray(0, c.header.length - 1)]);
      assert.equal(cut.state, 'more');
    }),
    { numRuns: 14_000 },
  );
  fc.assert(
    fc.property(
      validCase,
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      trailer,
      (c, where, value, after) => {
        const broken = Buffer.from(c.header);
        const at = where % broken.length;
        broken[at] = value === broken[at] ? (value + 1) % 256 : value;
        splitInvariant(c.accept, Buffer.concat([broken, after]));
      },
    ),
    { numRuns: 6_000 },
  );
  fc.assert(
    fc.property(
      fc.constantFrom<ProxyProtocol>('v1', 'v2', 'any'),
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.stringMatching(/^PROXY [ -~\r\n]{0,120}$/).map((s) => Buffer.from(s, 'latin1')),
      ),
      (accept, bytes) => {
        splitInvariant(accept, bytes);
      },
    ),
    { numRuns: 6_000 },
  );
  const seconds = (performance.now() - started) / 1000;
  console.log(`${parses} parses in ${seconds.toFixed(1)} s`);
  assert.ok(parses >= 1_000_000, `only ${parses} parses`);
});
