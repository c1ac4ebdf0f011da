/**
 * The PROXY header parser on its own (bytes in, states out): every header
 * form the spec defines, and every way a header can be malformed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ProxyHeader,
  ProxyHeaderParser,
  type ProxyProtocol,
  V1_MAX_BYTES,
  V2_MAX_BYTES,
  V2_SIGNATURE,
} from '../../../src/core/proxy/proxy-header.js';
import { v1Header, v2Header } from '../../support/proxy-headers.js';

/** Feeds `bytes` whole; returns the parser and how many bytes it took. */
function parse(bytes: Uint8Array, accept: ProxyProtocol = 'any') {
  const parser = new ProxyHeaderParser(accept);
  const taken = parser.push(bytes);
  return { parser, taken };
}

function parsed(bytes: Uint8Array, accept: ProxyProtocol = 'any'): ProxyHeader {
  const { parser, taken } = parse(bytes, accept);
  assert.equal(parser.state, 'done', parser.error);
  assert.equal(taken, parser.header?.length);
  return parser.header as ProxyHeader;
}

function rejected(bytes: Uint8Array, pattern: RegExp, accept: ProxyProtocol = 'any'): void {
  const { parser } = parse(bytes, accept);
  assert.equal(
    parser.state,
    'error',
    `accepted ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}`,
  );
  assert.match(parser.error, pattern);
  assert.equal(parser.push(Buffer.from('more')), 0, 'takes nothing after an error');
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');

function v2Raw(verCmd: number, famTransport: number, body: number[]): Buffer {
  const fixed = Buffer.alloc(16);
  V2_SIGNATURE.copy(fixed);
  fixed[12] = verCmd;
  fixed[13] = famTransport;
  fixed.writeUInt16BE(body.length, 14);
  return Buffer.concat([fixed, Buffer.from(body)]);
}

describe('PROXY header v1', () => {
  test('TCP4: client and destination addresses and ports; the bytes after it are not taken', () => {
    const header = v1Header('TCP4', '192.0.2.7', '198.51.100.1', 56324, 443);
    const { parser, taken } = parse(Buffer.concat([header, latin1('GET / HTTP/1.1\r\n')]));
    assert.equal(parser.state, 'done');
    assert.equal(taken, header.length);
    assert.deepEqual(parser.header, {
      version: 1,
      command: 'proxy',
      source: { address: '192.0.2.7', port: 56324, family: 'IPv4' },
      destination: { address: '198.51.100.1', port: 443, family: 'IPv4' },
      length: header.length,
    });
  });

  test('TCP6, with the longest line the spec allows (107 bytes) accepted', () => {
    const h = parsed(v1Header('TCP6', '2001:db8::1', '::1', 1, 65535));
    assert.deepEqual(h.source, { address: '2001:db8::1', port: 1, family: 'IPv6' });
    assert.deepEqual(h.destination, { address: '::1', port: 65535, family: 'IPv6' });
    const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const longest = v1Header('TCP6', full, full, 65535, 65535);
    assert.equal(parsed(longest).source?.address, full);
    // The spec's worst case: UNKNOWN followed by what TCP6 would carry.
    const worst = latin1(`PROXY UNKNOWN ${full} ${full} 65535 65535\r\n`);
    assert.equal(worst.length, V1_MAX_BYTES);
    assert.equal(parsed(worst).length, V1_MAX_BYTES);
  });

  test('UNKNOWN, alone or followed by anything up to CRLF: no addresses', () => {
    for (const line of [
      'PROXY UNKNOWN\r\n',
      'PROXY UNKNOWN ffff::1 ::1 1 2\r\n',
      'PROXY UNKNOWN junk\r\n',
    ]) {
      const h = parsed(latin1(line));
      assert.equal(h.source, null);
      assert.equal(h.destination, null);
      assert.equal(h.length, line.length);
    }
  });

  test('byte by byte gives the same header as one chunk', () => {
    const header = v1Header('TCP4', '10.0.0.1', '10.0.0.2', 1000, 2000);
    const parser = new ProxyHeaderParser('v1');
    for (let i = 0; i < header.length; i++) {
      assert.equal(parser.state, 'more');
      assert.ok(
        parser.wanted >= 1 && parser.wanted <= header.length - i,
        `wanted ${parser.wanted} at ${i}`,
      );
      assert.equal(parser.push(header.subarray(i, i + 1)), 1);
    }
    assert.equal(parser.state, 'done');
    assert.equal(parser.wanted, 0);
    assert.equal(parser.header?.source?.address, '10.0.0.1');
  });

  const malformed: [string, RegExp][] = [
    ['GET / HTTP/1.1\r\n', /did not start with a PROXY protocol header/],
    ['proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', /did not start/],
    ['PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n', /must begin with "PROXY "/],
    ['PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol/],
    ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', /unknown protocol "TCP5"/],
    ['PROXY \r\n', /unknown protocol ""/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /single spaces/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', /single spaces/],
    ['PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', /single spaces/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', /single spaces/],
    ['PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', /two IPv4 addresses/],
    ['PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', /two IPv4 addresses/],
    ['PROXY TCP4 ::1 5.6.7.8 1 2\r\n', /two IPv4 addresses/],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /two IPv6 addresses/],
    ['PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /two IPv6 addresses/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', /ports must be decimal/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n', /ports must be decimal/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', /ports must be decimal/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n', /ports must be decimal/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n', /ports must be decimal/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /LF without CR/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /CR not followed by LF/],
    ['PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', /not printable ASCII/],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\u00e9\r\n', /not printable ASCII/],
  ];
  for (const [line, pattern] of malformed) {
    test(`rejects ${JSON.stringify(line)}`, () => rejected(latin1(line), pattern));
  }

  test('rejects a line with no CRLF within 107 bytes, having taken no more than 107', () => {
    const line = latin1(`PROXY UNKNOWN ${'x'.repeat(200)}`);
    const { parser, taken } = parse(line);
    assert.equal(parser.state, 'error');
    assert.match(parser.error, /no CRLF within 107 bytes/);
    assert.ok(taken <= V1_MAX_BYTES, `took ${taken}`);
    // 106 bytes then CRLF would be 108: one too many.
    rejected(latin1(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`), /no CRLF within 107/);
    parsed(latin1(`PROXY UNKNOWN ${'x'.repeat(91)}\r\n`));
  });

  test('a v1 header where only v2 is accepted, and v2 where only v1 is, are refused', () => {
    rejected(v1Header('TCP4', '1.2.3.4', '5.6.7.8', 1, 2), /expected a v2 header/, 'v2');
    const v2 = v2Header({
      command: 'proxy',
      source: [1, 2, 3, 4],
      destination: [5, 6, 7, 8],
      sourcePort: 1,
      destinationPort: 2,
    });
    rejected(v2, /expected a v1 header/, 'v1');
  });
});

describe('PROXY header v2', () => {
  test('PROXY over IPv4: addresses and ports, and the bytes after it are not taken', () => {
    const header = v2Header({
      command: 'proxy',
      source: [192, 0, 2, 7],
      destination: [10, 0, 0, 1],
      sourcePort: 4567,
      destinationPort: 5150,
    });
    assert.equal(header.length, 28);
    const { parser, taken } = parse(Buffer.concat([header, latin1('hello')]));
    assert.equal(taken, 28);
    assert.deepEqual(parser.header, {
      version: 2,
      command: 'proxy',
      source: { address: '192.0.2.7', port: 4567, family: 'IPv4' },
      destination: { address: '10.0.0.1', port: 5150, family: 'IPv4' },
      length: 28,
    });
  });

  test('PROXY over IPv6, compressed as RFC 5952 says; IPv4-mapped in dotted form', () => {
    const src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
    const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 7];
    const h = parsed(
      v2Header({
        command: 'proxy',
        source: src,
        destination: mapped,
        sourcePort: 0,
        destinationPort: 65535,
      }),
    );
    assert.deepEqual(h.source, { address: '2001:db8::1:0:0:1', port: 0, family: 'IPv6' });
    assert.deepEqual(h.destination, { address: '::ffff:127.0.0.7', port: 65535, family: 'IPv6' });
  });

  test('TLVs after the addresses are skipped, however they are split', () => {
    const tlvs = Buffer.concat([
      Buffer.from([0x01, 0x00, 0x02]),
      latin1('h2'),
      Buffer.from([0x05, 0x01, 0x00]),
      Buffer.alloc(256, 7),
    ]);
    const header = v2Header({
      command: 'proxy',
      source: [1, 2, 3, 4],
      destination: [5, 6, 7, 8],
      sourcePort: 9,
      destinationPort: 10,
      tlvs,
    });
    const whole = Buffer.concat([header, latin1('after')]);
    for (const split of [1, 16, 20, 28, 29, 100, header.length - 1, header.length]) {
      const parser = new ProxyHeaderParser('v2');
      const first = parser.push(whole.subarray(0, split));
      const second = parser.push(whole.subarray(split));
      assert.equal(parser.state, 'done', `split at ${split}: ${parser.error}`);
      assert.equal(first + second, header.length);
      assert.equal(parser.header?.source?.address, '1.2.3.4');
    }
  });

  test('LOCAL (a health check of the balancer): no addresses, whatever the family says', () => {
    const h = parsed(
      v2Header({
        command: 'local',
        source: null,
        destination: null,
        sourcePort: 0,
        destinationPort: 0,
      }),
    );
    assert.equal(h.command, 'local');
    assert.equal(h.source, null);
    const withBlock = parsed(v2Raw(0x20, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]));
    assert.equal(withBlock.command, 'local');
    assert.equal(withBlock.source, null);
  });

  test('UNSPEC and UNIX families: a PROXY header whose addresses the connection keeps its own for', () => {
    assert.equal(parsed(v2Raw(0x21, 0x00, [])).source, null);
    const unix = parsed(v2Raw(0x21, 0x31, new Array(216).fill(0x61)));
    assert.equal(unix.source, null);
    assert.equal(unix.length, 16 + 216);
  });

  const malformed: [string, Buffer, RegExp][] = [
    [
      'a bad signature byte',
      Buffer.concat([
        Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]),
        Buffer.alloc(16),
      ]),
      /bad signature/,
    ],
    ['version 1', v2Raw(0x11, 0x11, new Array(12).fill(0)), /version 1/],
    ['version 3', v2Raw(0x31, 0x11, new Array(12).fill(0)), /version 3/],
    ['command 2', v2Raw(0x22, 0x11, new Array(12).fill(0)), /command 2/],
    ['family 4', v2Raw(0x21, 0x41, new Array(12).fill(0)), /unknown address family/],
    ['transport 3', v2Raw(0x21, 0x13, new Array(12).fill(0)), /unknown address family/],
    ['UDP over IPv4', v2Raw(0x21, 0x12, new Array(12).fill(0)), /datagram/],
    [
      'IPv4 without a transport',
      v2Raw(0x21, 0x10, new Array(12).fill(0)),
      /needs the STREAM transport/,
    ],
    [
      'IPv4 with 11 address bytes',
      v2Raw(0x21, 0x11, new Array(11).fill(0)),
      /too short for its addresses \(12/,
    ],
    [
      'IPv6 with 35 address bytes',
      v2Raw(0x21, 0x21, new Array(35).fill(0)),
      /too short for its addresses \(36/,
    ],
    [
      'UNIX with 200 address bytes',
      v2Raw(0x21, 0x31, new Array(200).fill(0)),
      /too short for its addresses \(216/,
    ],
  ];
  for (const [what, bytes, pattern] of malformed) {
    test(`rejects ${what}`, () => rejected(bytes, pattern));
  }

  test(`rejects a header over ${V2_MAX_BYTES} bytes from its length field, before reading the rest`, () => {
    const fixed = v2Raw(0x21, 0x11, []);
    fixed.writeUInt16BE(V2_MAX_BYTES - 16 + 1, 14);
    const { parser, taken } = parse(fixed);
    assert.equal(parser.state, 'error');
    assert.match(parser.error, /more than the 4096 accepted/);
    assert.equal(taken, 16);
    const largest = v2Raw(0x21, 0x11, new Array(V2_MAX_BYTES - 16).fill(0));
    assert.equal(parsed(largest).length, V2_MAX_BYTES);
  });

  test('a truncated header is still waiting, never done or wrong', () => {
    const header = v2Header({
      command: 'proxy',
      source: [1, 2, 3, 4],
      destination: [5, 6, 7, 8],
      sourcePort: 1,
      destinationPort: 2,
    });
    const { parser, taken } = parse(header.subarray(0, header.length - 1));
    assert.equal(parser.state, 'more');
    assert.equal(taken, header.length - 1);
    assert.equal(parser.wanted, 1);
  });
});
