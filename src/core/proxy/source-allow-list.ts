/**
 * Which peers may send a PROXY header (`--proxy-from CIDR,…`): only the load
 * balancers. Anyone else who could reach the port could otherwise claim any
 * client address. Built on node:net's BlockList (used here as an allow-list).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { UsageError } from '../errors.js';

/** Allowed source networks; an empty list allows every source. */
export class SourceAllowList {
  readonly #list = new BlockList();
  /** The networks as given, normalised to `address/prefix`, for messages and logs. */
  readonly networks: readonly string[];

  /**
   * Parses `10.0.0.0/8`, `127.0.0.1` (one host), `fd00::/8`, … Throws
   * `OVL_ERR_INVALID_ARGUMENT` naming the first entry that is not one.
   */
  constructor(networks: readonly string[]) {
    const normalised: string[] = [];
    for (const raw of networks) {
      const entry = raw.trim();
      const slash = entry.indexOf('/');
      const address = slash < 0 ? entry : entry.slice(0, slash);
      const v4 = isIPv4(address);
      if (!v4 && !isIPv6(address)) throw badEntry(raw, 'not an IP address');
      const max = v4 ? 32 : 128;
      const prefixText = slash < 0 ? String(max) : entry.slice(slash + 1);
      if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > max) {
        throw badEntry(raw, `the prefix length must be 0 to ${max}`);
      }
      const prefix = Number(prefixText);
      this.#list.addSubnet(address, prefix, v4 ? 'ipv4' : 'ipv6');
      normalised.push(`${address}/${prefix}`);
    }
    this.networks = normalised;
  }

  /** True when `address` (as a socket reports it) is in one of the networks, or the list is empty. */
  allows(address: string): boolean {
    if (this.networks.length === 0) return true;
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    if (mapped !== undefined) return this.#list.check(mapped, 'ipv4');
    return this.#list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
  }
}

function badEntry(raw: string, why: string): UsageError {
  return new UsageError(
    'OVL_ERR_INVALID_ARGUMENT',
    `proxy source ${JSON.stringify(raw)} is invalid: ${why}; give networks such as 10.0.0.0/8, 192.168.1.10 or fd00::/8`,
  );
}
