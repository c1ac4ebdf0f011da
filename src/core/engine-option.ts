/**
 * Turns an `engine:` option ({@link EngineOption}: a name, an Engine, or
 * nothing) into the Engine a handle runs on.
 *
 * Core may know engines only through the contract, so it cannot pick one
 * itself: `src/engines/select.ts`, the one place an engine is chosen,
 * installs the resolver here when it loads (the package entry loads it).
 * An Engine object passes through without it.
 */
import type { Engine, EngineOption } from '../engines/contract.js';
import { OverlappedError } from './errors.js';

type Resolver = (option: Exclude<EngineOption, Engine> | undefined) => Engine;

let resolver: Resolver | undefined;

/** @internal Called once, by src/engines/select.ts. */
export function setEngineResolver(resolve: Resolver): void {
  resolver = resolve;
}

/** The Engine `option` names; this thread's default engine when it is undefined. */
export function resolveEngine(option: EngineOption | undefined): Engine {
  if (typeof option === 'object' && option !== null) return option;
  if (resolver === undefined) {
    throw new OverlappedError(
      'OVL_ERR_INTERNAL',
      'no engine resolver: src/engines/select.ts was not loaded (import the package entry, or pass an Engine)',
    );
  }
  return resolver(option);
}
