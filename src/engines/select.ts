import { setEngineResolver } from '../core/engine-option.js';
import { OverlappedError } from '../core/errors.js';
import type { BlockingDescriptorIo, Engine, EngineName } from './contract.js';
import { NodeEngine } from './node/node-engine.js';
import { uringBlockingIo } from './uring/blocking-io.js';
import { checkUringSettings, UringEngine } from './uring/uring-engine.js';

/**
 * `engine:` option → Engine. Core's entry points call it too; importing it from
 * here guarantees the resolver below is installed.
 */
export { resolveEngine } from '../core/engine-option.js';
export type { EngineName, EngineOption } from './contract.js';

/** Engine names `OVERLAPPED_ENGINE`, `--engine` and `engine:` accept. */
export const ENGINE_NAMES = ['node', 'uring'] as const satisfies readonly EngineName[];

export interface EngineChoice {
  readonly engine: Engine;
  /** Why this engine runs, for the start-up log line. */
  readonly reason: string;
}

/**
 * Checks an engine name (`OVERLAPPED_ENGINE`, `--engine`, `engine:`) without
 * starting any engine: undefined or '' means "choose", an unknown name throws
 * `OVL_ERR_ENGINE_UNAVAILABLE`.
 */
export function parseEngineName(requested: string | undefined): EngineName | undefined {
  if (requested === undefined || requested === '') return undefined;
  if (!(ENGINE_NAMES as readonly string[]).includes(requested)) {
    throw new OverlappedError(
      'OVL_ERR_ENGINE_UNAVAILABLE',
      `unknown engine '${requested}': use one of ${ENGINE_NAMES.join(', ')} (OVERLAPPED_ENGINE, --engine or engine:)`,
    );
  }
  return requested as EngineName;
}

/**
 * The one place an engine is chosen. `requested` (or `OVERLAPPED_ENGINE`)
 * forces a choice; forcing one that cannot run here throws
 * `OVL_ERR_ENGINE_UNAVAILABLE`. Otherwise the fastest engine that works here
 * is taken. One engine serves a whole event loop (thread).
 */
export function chooseEngine(requested = process.env.OVERLAPPED_ENGINE): EngineChoice {
  const name = parseEngineName(requested);
  if (name === 'node') return { engine: sharedNodeEngine(), reason: 'requested' };
  checkEngineSettings();
  const uring = sharedUringEngine();
  if (uring instanceof UringEngine) {
    return { engine: uring, reason: name === 'uring' ? 'requested' : 'io_uring is available' };
  }
  if (name === 'uring') {
    throw new OverlappedError(
      'OVL_ERR_ENGINE_UNAVAILABLE',
      `engine 'uring' was requested but cannot run here: ${uring}; unset OVERLAPPED_ENGINE or use 'node'`,
    );
  }
  return { engine: sharedNodeEngine(), reason: `uring unavailable: ${uring}` };
}

/**
 * Refuses bad values of the engines' tuning variables (OVERLAPPED_URING_*)
 * with a UsageError naming the allowed ones. `chooseEngine` calls it before
 * it starts an engine that reads them; the CLI calls it for every command.
 */
export function checkEngineSettings(): void {
  checkUringSettings();
}

/** This thread's io_uring engine, or why it cannot run here (probed once). */
let uringEngine: UringEngine | string | undefined;

function sharedUringEngine(): UringEngine | string {
  if (uringEngine === undefined) {
    try {
      uringEngine = new UringEngine();
    } catch (err) {
      uringEngine = (err as Error).message;
    }
  }
  return uringEngine;
}

let nodeEngine: NodeEngine | undefined;

function sharedNodeEngine(): NodeEngine {
  nodeEngine ??= new NodeEngine();
  return nodeEngine;
}

let defaultChoice: EngineChoice | undefined;

/** The engine of this thread, chosen once by {@link chooseEngine}. */
export function defaultEngine(): EngineChoice {
  defaultChoice ??= chooseEngine();
  return defaultChoice;
}

/**
 * The blocking descriptor calls of the engine that can hand descriptors to
 * other threads (uring), loaded without starting that engine: a connection
 * thread of the blocking model needs the calls, not a ring. Throws when the
 * addon cannot load here.
 */
export function blockingDescriptorIo(): BlockingDescriptorIo {
  return uringBlockingIo();
}

/**
 * What every `engine:` option resolves through (see src/core/engine-option.ts):
 * a name is {@link chooseEngine}'s engine of that name (OVERLAPPED_ENGINE does
 * not override a name given in code), nothing is {@link defaultEngine}.
 */
setEngineResolver((name) => (name === undefined ? defaultEngine() : chooseEngine(name)).engine);
