/**
 * The servers a report compares: `overlapped echo` on each chosen engine × model
 * (the default variant of each, not the per-connection-buffer or Nagle ones), and every peer the
 * echo bench's catalogue lists. The peer list is the catalogue's, so a peer added
 * there (the C io_uring one) is run here too; a peer this project expects but whose
 * source is not in the checkout is listed as unavailable with that reason.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_MODEL,
  type EngineName,
  type ModelName,
  ROOT,
  type ServerSpec,
  serverCatalogue,
} from '../../bench/echo-servers.js';
import type { ServerEntry } from './results.js';

/** How the page names the catalogue's peers; a peer not listed here is shown by its id. */
const PEER_LABELS: Record<string, string> = {
  'node-net': 'node:net',
  'c-epoll': 'C epoll',
  'c-uring': 'C io_uring',
  bun: 'Bun',
};

/** Peers the design names, by their source: absent from the checkout, they are reported missing. */
const EXPECTED_PEERS = [{ id: 'c-uring', label: 'C io_uring', source: 'bench/peers/uring-echo.c' }];

export interface ReportServer {
  spec: ServerSpec;
  entry: ServerEntry;
}

/** Adds `flags` to the command line `spec` starts with. */
export function withFlags(spec: ServerSpec, id: string, flags: string[]): ServerSpec {
  return {
    ...spec,
    id,
    launch: (port) => {
      const launch = spec.launch(port);
      return { ...launch, args: [...launch.args, ...flags] };
    },
  };
}

/** Every peer a report can name: the catalogue's, and the expected ones. */
export function peerIds(): string[] {
  const listed = serverCatalogue()
    .filter((s) => s.engine === undefined && s.optIn !== true)
    .map((s) => s.id);
  return [...new Set([...listed, ...EXPECTED_PEERS.map((p) => p.id)])];
}

/** `peers`: the peer ids to run (undefined: every one). */
export function reportServers(
  engines: readonly EngineName[],
  models: readonly ModelName[],
  maxThreads: number,
  peers?: readonly string[],
): ReportServer[] {
  const catalogue = serverCatalogue();
  const servers: ReportServer[] = [];
  for (const engine of engines) {
    for (const model of models) {
      const id = `ovl-${engine}${model === DEFAULT_MODEL ? '' : `-${model}`}`;
      const found = catalogue.find((s) => s.id === id);
      if (found === undefined) continue;
      // The report's own thread cap, so memory per thread can be read as far as it goes.
      const spec =
        model === 'blocking'
          ? withFlags({ ...found, maxClients: maxThreads }, id, [
              '--max-threads',
              String(maxThreads),
            ])
          : found;
      servers.push({
        spec,
        entry: { id, label: model, kind: 'overlapped', model, engine, available: true },
      });
    }
  }
  for (const spec of catalogue) {
    if (spec.engine !== undefined || spec.optIn === true) continue;
    if (peers !== undefined && !peers.includes(spec.id)) continue;
    servers.push({
      spec,
      entry: { id: spec.id, label: PEER_LABELS[spec.id] ?? spec.id, kind: 'peer', available: true },
    });
  }
  return servers;
}

/** Expected peers (of those chosen) that cannot be in the run at all, with why. */
export function absentPeers(
  present: readonly ReportServer[],
  peers?: readonly string[],
): ServerEntry[] {
  const absent: ServerEntry[] = [];
  for (const peer of EXPECTED_PEERS) {
    if (peers !== undefined && !peers.includes(peer.id)) continue;
    // Present under any id whose catalogue line names the same source.
    const named = (s: ReportServer) =>
      s.entry.id === peer.id || s.spec.description.includes(peer.source.split('/').pop() ?? '');
    if (present.some(named)) continue;
    const source = join(ROOT, peer.source);
    const reason = existsSync(source)
      ? `${peer.source} exists but bench/echo-servers.ts does not list a '${peer.id}' server`
      : `${peer.source} is not in this checkout`;
    absent.push({ id: peer.id, label: peer.label, kind: 'peer', available: false, reason });
  }
  return absent;
}
