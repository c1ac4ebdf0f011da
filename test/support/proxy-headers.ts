/**
 * PROXY headers for tests, built by proxy-protocol-js (an independent
 * encoder, so the parser is not checked against its own reading of the
 * spec). Its v2 length field counts only the address block, so TLVs are
 * inserted after that block here and the length is raised by theirs.
 */
import proxyProtocol from 'proxy-protocol-js';

const {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  UnspecProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} = proxyProtocol;

export function v1Header(
  family: 'TCP4' | 'TCP6',
  source: string,
  destination: string,
  sourcePort: number,
  destinationPort: number,
): Buffer {
  const text = new V1ProxyProtocol(
    family === 'TCP4' ? INETProtocol.TCP4 : INETProtocol.TCP6,
    new Peer(source, sourcePort),
    new Peer(destination, destinationPort),
  ).build();
  return Buffer.from(text, 'latin1');
}

export interface V2Spec {
  readonly command: 'proxy' | 'local';
  /** 4 bytes (IPv4), 16 (IPv6), or null (UNSPEC). */
  readonly source: readonly number[] | null;
  readonly destination: readonly number[] | null;
  readonly sourcePort: number;
  readonly destinationPort: number;
  /** Raw TLV bytes after the address block. */
  readonly tlvs?: Uint8Array;
}

export function v2Header(spec: V2Spec): Buffer {
  const command = spec.command === 'local' ? Command.LOCAL : Command.PROXY;
  let address: InstanceType<
    typeof IPv4ProxyAddress | typeof IPv6ProxyAddress | typeof UnspecProxyAddress
  >;
  if (spec.source === null || spec.destination === null) {
    address = new UnspecProxyAddress();
  } else if (spec.source.length === 4) {
    address = new IPv4ProxyAddress(
      IPv4Address.createFrom([...spec.source]),
      spec.sourcePort,
      IPv4Address.createFrom([...spec.destination]),
      spec.destinationPort,
    );
  } else {
    address = new IPv6ProxyAddress(
      IPv6Address.createFrom([...spec.source]),
      spec.sourcePort,
      IPv6Address.createFrom([...spec.destination]),
      spec.destinationPort,
    );
  }
  const transport = spec.source === null ? TransportProtocol.UNSPEC : TransportProtocol.STREAM;
  const built = Buffer.from(new V2ProxyProtocol(command, transport, address).build());
  const tlvs = spec.tlvs ?? new Uint8Array(0);
  if (tlvs.length === 0) return built;
  const out = Buffer.concat([built, tlvs]);
  out.writeUInt16BE(out.readUInt16BE(14) + tlvs.length, 14);
  return out;
}

/** The canonical text of an IPv6 address (WHATWG URL's), to compare two spellings of one address. */
export function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** Text of 16 address bytes in full (eight groups): what canonicalIPv6 then compresses. */
export function fullIPv6(bytes: readonly number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return groups.join(':');
}
